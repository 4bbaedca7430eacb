package gardenrunc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// process is a process garden-init started in the container (spawn.go).
// Its exit status comes from the shim that waits for it, over the spawn
// connection.
//
// Its stdout and stderr are FIFOs in the process directory that the
// process holds open for reading and writing: if the server goes away,
// writes never fail (they wait, 64 KiB on, for a reader) and a restarted
// server reopens the FIFOs and carries on. Output is read by two pumps and
// fanned out to every attached writer; Wait returns after the pumps have
// delivered everything.
type process struct {
	id    string
	dir   string
	pid   int
	start string // the pid's start time, which tells it from a recycled one
	// shim is the pid of the garden-init shim that waits for the process
	// and reports its exit; Stop leaves it be.
	shim      int
	shimStart string

	stdin   *os.File   // the process's stdin pipe, or the pty master; nil once restored
	tty     *os.File   // pty master, nil without a terminal
	readers []*os.File // the server's ends of the output streams

	// stdinMu serialises writes and the close of stdin.
	stdinMu     sync.Mutex
	stdinClosed bool

	// mu guards the writer lists.
	mu   sync.Mutex
	outs []io.Writer
	errs []io.Writer

	pumps  sync.WaitGroup
	done   chan struct{}
	status int
	err    error
	exited time.Time
}

// processRecord is what the process directory keeps for a restarted
// server: enough to find the process again and not mistake a recycled pid.
type processRecord struct {
	ID        string `json:"id"`
	Pid       int    `json:"pid"`
	StartTime string `json:"start_time"`
	ShimPid   int    `json:"shim_pid,omitempty"`
	ShimStart string `json:"shim_start,omitempty"`
	TTY       bool   `json:"tty,omitempty"`
}

const processRecordFile = "process.state.json"

// errExitUnknown is the Wait error of a process that ended while no server
// was its parent.
var errExitUnknown = errors.New("exit status unknown: the process was started by a previous garden server")

func windowSize(t *garden.TTYSpec) garden.WindowSize {
	ws := garden.WindowSize{Columns: 80, Rows: 24}
	if t != nil && t.WindowSize != nil {
		if t.WindowSize.Columns != 0 {
			ws.Columns = t.WindowSize.Columns
		}
		if t.WindowSize.Rows != 0 {
			ws.Rows = t.WindowSize.Rows
		}
	}
	return ws
}

func setWinsize(f *os.File, ws garden.WindowSize) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Columns})
}

// outputFIFO makes a FIFO and returns the process's end (read-write, so
// the process itself always counts as a reader) and the server's
// (read-only, non-blocking so it goes through the poller).
func outputFIFO(path string) (child, server *os.File, err error) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, nil, fmt.Errorf("mkfifo %s: %w", path, err)
	}
	if child, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
		return nil, nil, err
	}
	if server, err = os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0); err != nil {
		child.Close()
		return nil, nil, err
	}
	return child, server, nil
}

// startProcess has the container's garden-init (its spawn socket is in
// containerDir) start the process, whose stdio and record live in dir,
// and returns once the process runs. initAlive tells, once the process's
// shim is gone, whether the whole container went with it.
//
// A terminal process (spec.TTY) gets the pty pair term (openPty).
func startProcess(containerDir, dir string, id string, spec spawnSpec, term [2]*os.File, pio garden.ProcessIO, initAlive func() bool) (*process, error) {
	p := &process{id: id, dir: dir, done: make(chan struct{})}
	var childFiles, readers []*os.File
	closeAll := func(files []*os.File) {
		for _, f := range files {
			f.Close()
		}
	}
	if spec.TTY {
		childFiles = []*os.File{term[1]}
		p.tty, p.stdin = term[0], term[0]
		readers = []*os.File{term[0]}
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		childFiles, p.stdin = append(childFiles, inR), inW
		for _, name := range []string{"stdout", "stderr"} {
			child, server, err := outputFIFO(filepath.Join(dir, name))
			if err != nil {
				closeAll(append(childFiles, readers...))
				inW.Close()
				return nil, err
			}
			childFiles, readers = append(childFiles, child), append(readers, server)
		}
	}
	p.attach(pio)
	sp, err := spawn(containerDir, spec, childFiles)
	closeAll(childFiles)
	if err != nil {
		closeAll(readers)
		if p.tty == nil {
			p.stdin.Close()
		}
		return nil, err
	}
	p.pid, p.start = sp.pid, procStartTime(sp.pid)
	p.shim, p.shimStart = sp.shim, procStartTime(sp.shim)
	p.readers = readers
	for i, r := range readers {
		p.pumps.Add(1)
		go p.pump(r, i == 1)
	}
	go p.waitSpawned(sp, initAlive)
	if err := writeRecord(dir, processRecord{ID: id, Pid: p.pid, StartTime: p.start, ShimPid: p.shim, ShimStart: p.shimStart, TTY: spec.TTY}); err != nil {
		// Not handed over: the waiter reaps it.
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		return nil, err
	}
	if pio.Stdin != nil {
		go p.copyStdin(pio.Stdin, true)
	}
	return p, nil
}

// openPty opens a terminal pair on the container's devpts (reached from
// the host through root, the container's root), as runc would for the
// process: the master for the server (non-blocking, for the poller), the
// slave, owned by uid, for the process.
func openPty(root *os.Root, uid uint32) (master, slave *os.File, err error) {
	master, err = root.OpenFile("dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open a terminal: %w", err)
	}
	m := int(master.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(m, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 5 || unix.Minor(st.Rdev) != 2 {
		master.Close()
		return nil, nil, errors.New("open a terminal: the container's /dev/pts/ptmx is not a pty multiplexer")
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock the terminal: %w", err)
	}
	s, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("open the terminal's slave: %w", errno)
	}
	slave = os.NewFile(s, "pty-slave")
	if err := slave.Chown(int(uid), -1); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("terminal owner: %w", err)
	}
	return master, slave, nil
}

// readPid reads the pid runc wrote to path.
func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	return pid, nil
}

// procStartTime is field 22 of /proc/pid/stat, which tells a process from
// a later one with a recycled pid.
func procStartTime(pid int) string {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func writeRecord(dir string, rec processRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, processRecordFile), data, 0o600)
}

// restoreProcess re-adopts a process a previous server started, if it
// still runs: its output FIFOs are reopened; its exit status will be
// unknown (it is no longer our child). A terminal process lost its pty
// master with the old server and is not adopted.
func restoreProcess(dir string) (*process, error) {
	data, err := os.ReadFile(filepath.Join(dir, processRecordFile))
	if err != nil {
		return nil, err
	}
	var rec processRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, err
	}
	if rec.TTY || rec.StartTime == "" || procStartTime(rec.Pid) != rec.StartTime {
		return nil, errors.New("process is gone")
	}
	p := &process{id: rec.ID, dir: dir, pid: rec.Pid, start: rec.StartTime, shim: rec.ShimPid, shimStart: rec.ShimStart,
		done: make(chan struct{}), stdinClosed: true}
	for i, name := range []string{"stdout", "stderr"} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		p.readers = append(p.readers, f)
		p.pumps.Add(1)
		go p.pump(f, i == 1)
	}
	go p.waitStranger(rec.StartTime)
	return p, nil
}

func (p *process) attach(pio garden.ProcessIO) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pio.Stdout != nil {
		p.outs = append(p.outs, pio.Stdout)
	}
	if pio.Stderr != nil {
		p.errs = append(p.errs, pio.Stderr)
	}
}

// pump copies one output stream to the attached writers until EOF (every
// writer gone) or EIO (how a pty master reports that the slave closed).
func (p *process) pump(r *os.File, stderr bool) {
	defer p.pumps.Done()
	defer r.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.mu.Lock()
			ws := p.outs
			if stderr {
				ws = p.errs
			}
			ws = append([]io.Writer(nil), ws...)
			p.mu.Unlock()
			for _, w := range ws {
				_, _ = w.Write(buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// waitSpawned takes the exit status from the process's shim. A shim gone
// without a word leaves two cases: the container's init died, and with it
// (SIGKILL to the whole pid namespace) the process; or something killed
// the shim alone, and the process, if it runs on, is waited for by pid.
func (p *process) waitSpawned(sp *spawned, initAlive func() bool) {
	status, err := sp.wait()
	if errors.Is(err, errShimLost) {
		if !initAlive() {
			status, err = 128+int(syscall.SIGKILL), nil
		} else if p.start != "" && procStartTime(p.pid) == p.start {
			p.waitStranger(p.start)
			return
		}
	}
	p.finish(status, err)
}

// waitStranger waits for a process that is not our child: a pidfd says
// when it is gone.
func (p *process) waitStranger(startTime string) {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err == nil {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		unix.Close(fd)
	} else {
		for procStartTime(p.pid) == startTime {
			time.Sleep(100 * time.Millisecond)
		}
	}
	p.finish(0, errExitUnknown)
}

// finish records the exit once every output byte has been delivered.
func (p *process) finish(status int, err error) {
	p.pumps.Wait()
	p.stdinMu.Lock()
	if !p.stdinClosed {
		p.stdinClosed = true
		if p.stdin != nil {
			p.stdin.Close()
		}
	}
	p.stdinMu.Unlock()
	if p.tty != nil && p.tty != p.stdin {
		p.tty.Close()
	}
	p.status, p.err, p.exited = status, err, time.Now()
	close(p.done)
}

// copyStdin forwards an attacher's stdin; the Run caller's EOF closes the
// process's stdin (for a tty: sends ^D).
func (p *process) copyStdin(r io.Reader, closeOnEOF bool) {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.stdinMu.Lock()
			if p.stdinClosed {
				p.stdinMu.Unlock()
				return
			}
			_, werr := p.stdin.Write(buf[:n])
			p.stdinMu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			if closeOnEOF {
				p.closeStdin()
			}
			return
		}
	}
}

func (p *process) closeStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdinClosed {
		return
	}
	if p.tty != nil {
		_, _ = p.stdin.Write([]byte{4})
		return
	}
	p.stdinClosed = true
	p.stdin.Close()
}

// detach lets go of a running process, as a server that goes away does:
// output stays in the FIFOs for the next server, stdin sees EOF (and a
// terminal process its hangup). Wait still returns when the process ends.
func (p *process) detach() {
	p.stdinMu.Lock()
	if !p.stdinClosed && p.stdin != nil {
		p.stdinClosed = true
		p.stdin.Close()
	}
	p.stdinMu.Unlock()
	for _, r := range p.readers {
		r.Close()
	}
}

// shimRuns tells whether the process's shim still runs (and its pid is
// not another's since).
func (p *process) shimRuns() bool {
	return p.shim != 0 && p.shimStart != "" && procStartTime(p.shim) == p.shimStart
}

func (p *process) exitedNow() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) ID() string { return p.id }

func (p *process) Wait() (int, error) {
	<-p.done
	return p.status, p.err
}

func (p *process) SetTTY(spec garden.TTYSpec) error {
	if p.tty == nil || spec.WindowSize == nil || p.exitedNow() {
		return nil
	}
	// The kernel signals SIGWINCH to the terminal's foreground group.
	return setWinsize(p.tty, windowSize(&spec))
}

func (p *process) Signal(sig garden.Signal) error {
	s := syscall.SIGTERM
	switch sig {
	case garden.SignalTerminate:
	case garden.SignalKill:
		s = syscall.SIGKILL
	default:
		return fmt.Errorf("unknown signal %d", sig)
	}
	if p.exitedNow() {
		return nil
	}
	if err := syscall.Kill(p.pid, s); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process %s: %w", p.id, err)
	}
	return nil
}

// attachment is a Process handle for one Attach.
type attachment struct{ *process }

var _ garden.Process = attachment{}
