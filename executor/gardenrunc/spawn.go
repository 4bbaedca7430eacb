package gardenrunc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// The spawn protocol between the server and garden-init (see
// initsrc/garden-init-amd64.S): the server connects to the container's
// spawn socket and sends one SOCK_SEQPACKET message, a program of system
// calls for the new process, with the process's stdio descriptors. The
// program runs in a vfork child of a shim that garden-init forked, inside
// the container, so the process starts with the init's namespaces,
// cgroup, capabilities, seccomp filter and no_new_privs, as `runc exec`
// would give it, without a runc start.
//
// The socket lives in the container's depot directory on the host: no
// container process can reach it, and it outlives a restart of the
// server (garden-init holds the listening end).

// The data segment of garden-init, which programs point into.
const (
	spawnDataBase   = 0x600000
	spawnCtrlOffset = 128 // the received SCM_RIGHTS message
	spawnConnOffset = 512 // the connection's descriptor number
	spawnProgOffset = 4096
	spawnProgMax    = 1 << 20

	// spawnStepSize is one step: number, flags, six arguments.
	spawnStepSize = 8 * 8
	// spawnIgnoreError lets a step fail and the program go on.
	spawnIgnoreError = 1 << 8
)

// Report kinds, the first word of each 24-byte message from the container.
const (
	reportStarted = 1 // the program's own last step before execve
	reportFailed  = 2 // a step failed: its address and -errno
	reportExited  = 3 // the process's wait status
	reportForked  = 4 // the shim's vfork returned: execve ran or the child died
)

const spawnSocketName = "init.sock"

// spawnArg is one argument of a step.
type spawnArg struct {
	v    uint64
	kind int
}

const (
	argValue    = iota
	argData     // an offset into the program's data, made an address
	argIndirect // the 32-bit value at an absolute address
)

func val(v uint64) spawnArg { return spawnArg{v: v} }

// passedFD is the i-th descriptor of the message, by its number in the shim.
func passedFD(i int) spawnArg {
	return spawnArg{v: spawnDataBase + spawnCtrlOffset + 16 + 4*uint64(i), kind: argIndirect}
}

func connFD() spawnArg { return spawnArg{v: spawnDataBase + spawnConnOffset, kind: argIndirect} }

type spawnStep struct {
	name  string
	nr    uintptr
	flags uint64
	args  []spawnArg
}

// spawnProgram builds a program: steps, and the data they point to.
type spawnProgram struct {
	steps  []spawnStep
	data   []byte
	relocs []int // offsets in data holding data offsets, made addresses
}

func (p *spawnProgram) call(name string, nr uintptr, args ...spawnArg) {
	p.steps = append(p.steps, spawnStep{name: name, nr: nr, args: args})
}

func (p *spawnProgram) align() {
	for len(p.data)%8 != 0 {
		p.data = append(p.data, 0)
	}
}

// bytes adds b to the data and returns its argument.
func (p *spawnProgram) bytes(b []byte) spawnArg {
	p.align()
	off := len(p.data)
	p.data = append(p.data, b...)
	return spawnArg{v: uint64(off), kind: argData}
}

func (p *spawnProgram) cstring(s string) spawnArg { return p.bytes(append([]byte(s), 0)) }

// words adds 64-bit words.
func (p *spawnProgram) words(ws ...uint64) spawnArg {
	var b []byte
	for _, w := range ws {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return p.bytes(b)
}

// strv adds a NULL-terminated array of C strings (argv, envp).
func (p *spawnProgram) strv(ss []string) spawnArg {
	ptrs := make([]spawnArg, len(ss))
	for i, s := range ss {
		ptrs[i] = p.cstring(s)
	}
	arr := p.bytes(make([]byte, 8*(len(ss)+1)))
	for i, ptr := range ptrs {
		at := int(arr.v) + 8*i
		binary.LittleEndian.PutUint64(p.data[at:], ptr.v)
		p.relocs = append(p.relocs, at)
	}
	return arr
}

// encode lays the program out as garden-init receives it at its program
// address, and returns the steps' names by address for error reports.
func (p *spawnProgram) encode() ([]byte, map[uint64]string, error) {
	base := uint64(spawnDataBase + spawnProgOffset)
	dataAt := base + uint64(spawnStepSize*(len(p.steps)+1))
	out := make([]byte, 0, spawnStepSize*(len(p.steps)+1)+len(p.data))
	names := make(map[uint64]string, len(p.steps))
	for i, s := range p.steps {
		if len(s.args) > 6 {
			return nil, nil, fmt.Errorf("spawn step %s: %d arguments", s.name, len(s.args))
		}
		names[base+uint64(spawnStepSize*i)] = s.name
		var words [8]uint64
		words[0], words[1] = uint64(s.nr), s.flags
		for j, a := range s.args {
			switch a.kind {
			case argData:
				words[2+j] = dataAt + a.v
			case argIndirect:
				words[2+j] = a.v
				words[1] |= 1 << j
			default:
				words[2+j] = a.v
			}
		}
		for _, w := range words {
			out = binary.LittleEndian.AppendUint64(out, w)
		}
	}
	names[base+uint64(spawnStepSize*len(p.steps))] = "the end of the program"
	out = binary.LittleEndian.AppendUint64(out, ^uint64(0))
	out = append(out, make([]byte, spawnStepSize-8)...)
	data := append([]byte(nil), p.data...)
	for _, at := range p.relocs {
		binary.LittleEndian.PutUint64(data[at:], binary.LittleEndian.Uint64(data[at:])+dataAt)
	}
	out = append(out, data...)
	if len(out) > spawnProgMax {
		return nil, nil, fmt.Errorf("process spec too large: its arguments and environment take %d bytes, at most %d", len(out), spawnProgMax)
	}
	return out, names, nil
}

// spawnSpec is what a process is started with.
type spawnSpec struct {
	Path    string   // as given: searched in the PATH of Env without a slash
	Args    []string // argv, Path first
	Env     []string
	Dir     string
	UID     uint32
	GID     uint32
	Groups  []uint32
	Rlimits []spawnRlimit
	// TTY: the one passed descriptor is a terminal, the process's
	// controlling one. Without, three are passed: stdin, stdout, stderr.
	TTY bool
}

type spawnRlimit struct {
	Resource   int
	Name       string // for errors: NOFILE for RLIMIT_NOFILE
	Soft, Hard uint64
}

// defaultPath is searched when the environment has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execCandidates are the files execve tries for path, as execvp does.
func execCandidates(path string, env []string) []string {
	if strings.Contains(path, "/") {
		return []string{path}
	}
	search := defaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			search = v
			break
		}
	}
	var out []string
	for _, dir := range strings.Split(search, ":") {
		if dir == "" {
			dir = "."
		}
		out = append(out, dir+"/"+path)
	}
	return out
}

// buildSpawnProgram is the program that turns the shim's vfork child into
// the process.
func buildSpawnProgram(s spawnSpec) *spawnProgram {
	p := &spawnProgram{}
	// The signal mask and session are the process's own.
	p.call("reset the signal mask", unix.SYS_RT_SIGPROCMASK, val(unix.SIG_SETMASK), p.words(0), val(0), val(8))
	p.call("setsid", unix.SYS_SETSID)
	if s.TTY {
		p.call("set the controlling terminal", unix.SYS_IOCTL, passedFD(0), val(unix.TIOCSCTTY), val(0))
		for fd := range 3 {
			p.call(fmt.Sprintf("dup the terminal to fd %d", fd), unix.SYS_DUP3, passedFD(0), val(uint64(fd)), val(0))
		}
	} else {
		for fd, name := range []string{"stdin", "stdout", "stderr"} {
			p.call("dup "+name, unix.SYS_DUP3, passedFD(fd), val(uint64(fd)), val(0))
		}
	}
	p.call("umask", unix.SYS_UMASK, val(0o022))
	for _, rl := range s.Rlimits {
		p.call("set rlimit "+rl.Name, unix.SYS_PRLIMIT64,
			val(0), val(uint64(rl.Resource)), p.words(rl.Soft, rl.Hard), val(0))
	}
	groups := make([]byte, 0, 4*len(s.Groups))
	for _, g := range s.Groups {
		groups = binary.LittleEndian.AppendUint32(groups, g)
	}
	groupsArg := val(0)
	if len(groups) > 0 {
		groupsArg = p.bytes(groups)
	}
	p.call("setgroups", unix.SYS_SETGROUPS, val(uint64(len(s.Groups))), groupsArg)
	gid, uid := uint64(s.GID), uint64(s.UID)
	p.call(fmt.Sprintf("setresgid %d", s.GID), unix.SYS_SETRESGID, val(gid), val(gid), val(gid))
	p.call(fmt.Sprintf("setresuid %d", s.UID), unix.SYS_SETRESUID, val(uid), val(uid), val(uid))
	p.call("chdir to "+s.Dir, unix.SYS_CHDIR, p.cstring(s.Dir))
	p.call("report the start", unix.SYS_SENDTO, connFD(), p.words(reportStarted, 0, 0), val(24), val(unix.MSG_NOSIGNAL), val(0), val(0))
	argv, envp := p.strv(s.Args), p.strv(s.Env)
	cands := execCandidates(s.Path, s.Env)
	for i, c := range cands {
		p.call("exec", unix.SYS_EXECVE, p.cstring(c), argv, envp)
		if i < len(cands)-1 {
			p.steps[len(p.steps)-1].flags |= spawnIgnoreError
		}
	}
	return p
}

// listenSpawn binds the spawn socket in dir for garden-init, which gets
// the listening end as fd 3.
func listenSpawn(dir string) (*os.File, error) {
	path := filepath.Join(dir, spawnSocketName)
	_ = os.Remove(path)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("spawn socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "spawn-socket")
	err = withUnixPath(path, func(addr string) error { return unix.Bind(fd, &unix.SockaddrUnix{Name: addr}) })
	if err == nil {
		err = unix.Listen(fd, 128)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spawn socket %s: %w", path, err)
	}
	return f, nil
}

// withUnixPath calls fn with an address for the socket at path: path
// itself, or when it is longer than a socket address holds, the same file
// reached through a descriptor of its directory.
func withUnixPath(path string, fn func(addr string) error) error {
	if len(path) < len(unix.RawSockaddrUnix{}.Path) {
		return fn(path)
	}
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path)))
}

// spawnTimeout bounds how long garden-init may take to start a process.
const spawnTimeout = 30 * time.Second

// spawned is a process garden-init started: its host pid, and the
// connection its exit status will come on.
type spawned struct {
	pid  int
	shim int
	conn *net.UnixConn
}

type spawnReport struct {
	kind, a, b uint64
	pid        int32 // the sender's pid, in the server's namespace
}

func readReport(conn *net.UnixConn) (spawnReport, error) {
	buf, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return spawnReport{}, err
	}
	if n == 0 {
		return spawnReport{}, errSpawnClosed
	}
	if n != 24 {
		return spawnReport{}, fmt.Errorf("garden-init sent a %d-byte report", n)
	}
	r := spawnReport{
		kind: binary.LittleEndian.Uint64(buf),
		a:    binary.LittleEndian.Uint64(buf[8:]),
		b:    binary.LittleEndian.Uint64(buf[16:]),
	}
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if cred, err := unix.ParseUnixCredentials(&m); err == nil {
				r.pid = cred.Pid
			}
		}
	}
	return r, nil
}

var errSpawnClosed = errors.New("connection closed")

// spawn starts a process through the container's garden-init.
func spawn(dir string, s spawnSpec, fds []*os.File) (*spawned, error) {
	prog, names, err := buildSpawnProgram(s).encode()
	if err != nil {
		return nil, err
	}
	conn, err := dialSpawn(filepath.Join(dir, spawnSocketName), len(prog))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	rights := make([]int, len(fds))
	for i, f := range fds {
		rights[i] = int(f.Fd())
	}
	if _, _, err := conn.WriteMsgUnix(prog, unix.UnixRights(rights...), nil); err != nil {
		return nil, fmt.Errorf("send the process to garden-init: %w", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(spawnTimeout))
	pid := 0
	defer func() {
		// A process that started but is not handed over is not left
		// running untracked.
		if !ok && pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}()
	for {
		r, err := readReport(conn)
		if errors.Is(err, errSpawnClosed) || errors.Is(err, syscall.ECONNRESET) {
			return nil, errors.New("garden-init could not fork the process (is the container's pids limit reached?)")
		}
		if err != nil {
			return nil, fmt.Errorf("start process: garden-init: %w", err)
		}
		switch r.kind {
		case reportStarted:
			pid = int(r.pid)
		case reportFailed:
			pid = 0 // it exits by itself
			return nil, stepFailure(s, names, r.a, r.b)
		case reportForked:
			if pid <= 0 {
				return nil, errors.New("start process: garden-init reported no pid")
			}
			_ = conn.SetReadDeadline(time.Time{})
			ok = true
			return &spawned{pid: pid, shim: int(r.pid), conn: conn}, nil
		default:
			return nil, fmt.Errorf("start process: garden-init sent report kind %d", r.kind)
		}
	}
}

func dialSpawn(path string, size int) (*net.UnixConn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "spawn")
	defer f.Close()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return nil, err
	}
	// One message holds the whole program: past the default buffer, a
	// bigger one (forced where the server may; a program too large for
	// the buffer fails to send with EMSGSIZE).
	if size > 100<<10 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size+64<<10) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, size+64<<10)
		}
	}
	err = withUnixPath(path, func(addr string) error { return unix.Connect(fd, &unix.SockaddrUnix{Name: addr}) })
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
		return nil, errors.New("the container's garden-init takes no processes (its init is gone, or the container was made by a gavel without the spawn socket)")
	}
	if err != nil {
		return nil, fmt.Errorf("connect to garden-init: %w", err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// stepFailure explains a failed step: at the step's address, -errno.
func stepFailure(s spawnSpec, names map[uint64]string, at, ret uint64) error {
	if at == 0 {
		return fmt.Errorf("start process: garden-init could not fork: %w", unix.Errno(-ret))
	}
	name, ok := names[at]
	if !ok {
		name = fmt.Sprintf("step at %#x", at)
	}
	errno := unix.Errno(-int64(ret))
	if name == "exec" {
		if errno == unix.ENOENT {
			if strings.Contains(s.Path, "/") {
				return garden.ExecutableNotFoundError{Message: fmt.Sprintf("exec: %q: no such file or directory", s.Path)}
			}
			return garden.ExecutableNotFoundError{Message: fmt.Sprintf("exec: %q: executable file not found in $PATH", s.Path)}
		}
		return fmt.Errorf("exec %q: %w", s.Path, errno)
	}
	return fmt.Errorf("start process: %s: %w", name, errno)
}

// wait reads the exit report: the status as Garden gives it (128+signal
// for a killed process). A connection that closes first means the shim
// died without reporting.
func (s *spawned) wait() (int, error) {
	defer s.conn.Close()
	for {
		r, err := readReport(s.conn)
		if err != nil {
			return 0, errShimLost
		}
		if r.kind != reportExited {
			continue
		}
		if int64(r.b) < 0 {
			return 0, fmt.Errorf("wait for the process: %w", unix.Errno(-int64(r.b)))
		}
		ws := unix.WaitStatus(uint32(r.a))
		if ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ws.ExitStatus(), nil
	}
}

var errShimLost = errors.New("exit status lost: the process's garden-init shim ended without reporting it")
