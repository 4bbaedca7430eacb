package gardenrunc

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gavel-scheduler/gavel/executor/garden"
	"github.com/gavel-scheduler/gavel/internal/roottest"
)

func TestExecCandidates(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		env        []string
		want       []string
	}{
		{"a slash is taken as is", "./run.sh", []string{"PATH=/bin"}, []string{"./run.sh"}},
		{"absolute", "/bin/true", nil, []string{"/bin/true"}},
		{"searched in PATH", "true", []string{"A=b", "PATH=/x:/y"}, []string{"/x/true", "/y/true"}},
		{"the first PATH wins, as for getenv", "true", []string{"PATH=/x", "PATH=/y"}, []string{"/x/true"}},
		{"an empty entry is the working directory", "true", []string{"PATH=/x::/y"}, []string{"/x/true", "./true", "/y/true"}},
		{"no PATH: the default", "true", nil, strings.Split("/usr/local/sbin/true:/usr/local/bin/true:/usr/sbin/true:/usr/bin/true:/sbin/true:/bin/true", ":")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := execCandidates(tc.path, tc.env); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("execCandidates(%q, %q) = %q, want %q", tc.path, tc.env, got, tc.want)
			}
		})
	}
}

// decodedStep is one step read back from an encoded program.
type decodedStep struct {
	nr, flags uint64
	args      [6]uint64
}

func decodeProgram(t *testing.T, prog []byte) []decodedStep {
	t.Helper()
	var steps []decodedStep
	for off := 0; ; off += spawnStepSize {
		if off+spawnStepSize > len(prog) {
			t.Fatal("program has no end step")
		}
		w := func(i int) uint64 { return binary.LittleEndian.Uint64(prog[off+8*i:]) }
		if w(0) == ^uint64(0) {
			return steps
		}
		s := decodedStep{nr: w(0), flags: w(1)}
		for i := range s.args {
			s.args[i] = w(2 + i)
		}
		steps = append(steps, s)
	}
}

// cString reads the NUL-terminated string at address addr of a program
// that garden-init received at its program address.
func cString(t *testing.T, prog []byte, addr uint64) string {
	t.Helper()
	off := int(addr - (spawnDataBase + spawnProgOffset))
	if off < 0 || off >= len(prog) {
		t.Fatalf("address %#x outside the program", addr)
	}
	end := off
	for end < len(prog) && prog[end] != 0 {
		end++
	}
	return string(prog[off:end])
}

func TestSpawnProgramLayout(t *testing.T) {
	spec := spawnSpec{
		Path: "sh", Args: []string{"sh", "-c", "echo hi"}, Env: []string{"PATH=/usr/bin:/bin", "A=1"},
		Dir: "/home/vcap", UID: 1000, GID: 1001, Groups: []uint32{5, 7},
		Rlimits: []spawnRlimit{{Resource: unix.RLIMIT_NOFILE, Name: "NOFILE", Soft: 1024, Hard: 2048}},
	}
	prog, names, err := buildSpawnProgram(spec).encode()
	if err != nil {
		t.Fatal(err)
	}
	steps := decodeProgram(t, prog)
	byNr := func(nr uintptr) []decodedStep {
		var out []decodedStep
		for _, s := range steps {
			if s.nr == uint64(nr) {
				out = append(out, s)
			}
		}
		return out
	}

	// stdio: each dup reads a received descriptor indirectly from the
	// control message, in the order they are passed.
	dups := byNr(unix.SYS_DUP3)
	if len(dups) != 3 {
		t.Fatalf("%d dup3 steps, want 3", len(dups))
	}
	for i, d := range dups {
		if d.flags&1 == 0 || d.args[0] != spawnDataBase+spawnCtrlOffset+16+4*uint64(i) || d.args[1] != uint64(i) {
			t.Errorf("dup %d = %+v, want fd %d read from the control message", i, d, i)
		}
	}
	// Credentials: groups, then gid, then uid (after which the setup
	// could no longer change them).
	order := []uintptr{unix.SYS_SETGROUPS, unix.SYS_SETRESGID, unix.SYS_SETRESUID, unix.SYS_CHDIR, unix.SYS_SENDTO, unix.SYS_EXECVE}
	last := -1
	for _, nr := range order {
		at := -1
		for i, s := range steps {
			if s.nr == uint64(nr) {
				at = i
				break
			}
		}
		if at <= last {
			t.Fatalf("syscall %d at step %d, not after step %d", nr, at, last)
		}
		last = at
	}
	if g := byNr(unix.SYS_SETGROUPS)[0]; g.args[0] != 2 ||
		binary.LittleEndian.Uint32(prog[g.args[1]-(spawnDataBase+spawnProgOffset):]) != 5 {
		t.Errorf("setgroups = %+v", g)
	}
	if u := byNr(unix.SYS_SETRESUID)[0]; u.args[0] != 1000 || u.args[1] != 1000 || u.args[2] != 1000 {
		t.Errorf("setresuid = %+v", u)
	}
	if rl := byNr(unix.SYS_PRLIMIT64); len(rl) != 1 || rl[0].args[1] != unix.RLIMIT_NOFILE {
		t.Errorf("prlimit steps = %+v", rl)
	}
	if d := byNr(unix.SYS_CHDIR)[0]; cString(t, prog, d.args[0]) != "/home/vcap" {
		t.Errorf("chdir to %q", cString(t, prog, d.args[0]))
	}
	// The start report goes on the connection, read indirectly.
	if s := byNr(unix.SYS_SENDTO)[0]; s.flags&1 == 0 || s.args[0] != spawnDataBase+spawnConnOffset || s.args[2] != 24 {
		t.Errorf("start report = %+v", s)
	}
	// execve per PATH entry; only the last may end the program.
	execs := byNr(unix.SYS_EXECVE)
	if len(execs) != 2 {
		t.Fatalf("%d execve steps, want 2", len(execs))
	}
	for i, e := range execs {
		wantPath := []string{"/usr/bin/sh", "/bin/sh"}[i]
		if got := cString(t, prog, e.args[0]); got != wantPath {
			t.Errorf("execve %d path %q, want %q", i, got, wantPath)
		}
		if ignores := e.flags&spawnIgnoreError != 0; ignores != (i == 0) {
			t.Errorf("execve %d ignores its error: %v", i, ignores)
		}
		var argv []string
		for j := 0; ; j++ {
			at := e.args[1] + 8*uint64(j) - (spawnDataBase + spawnProgOffset)
			ptr := binary.LittleEndian.Uint64(prog[at:])
			if ptr == 0 {
				break
			}
			argv = append(argv, cString(t, prog, ptr))
		}
		if !reflect.DeepEqual(argv, spec.Args) {
			t.Errorf("argv %q, want %q", argv, spec.Args)
		}
	}
	// Every step has a name for error reports.
	for i := range steps {
		if names[spawnDataBase+spawnProgOffset+uint64(spawnStepSize*i)] == "" {
			t.Errorf("step %d has no name", i)
		}
	}
}

func TestSpawnProgramTTY(t *testing.T) {
	prog, _, err := buildSpawnProgram(spawnSpec{Path: "/bin/sh", Args: []string{"/bin/sh"}, Dir: "/", TTY: true}).encode()
	if err != nil {
		t.Fatal(err)
	}
	var ctty, dups int
	for _, s := range decodeProgram(t, prog) {
		switch {
		case s.nr == unix.SYS_IOCTL && s.args[1] == unix.TIOCSCTTY:
			ctty++
		case s.nr == unix.SYS_DUP3:
			if s.args[0] != spawnDataBase+spawnCtrlOffset+16 {
				t.Errorf("dup of %#x, want the one passed terminal", s.args[0])
			}
			dups++
		}
	}
	if ctty != 1 || dups != 3 {
		t.Fatalf("tty program: %d TIOCSCTTY, %d dups", ctty, dups)
	}
}

func TestSpawnProgramTooLarge(t *testing.T) {
	_, _, err := buildSpawnProgram(spawnSpec{Path: "/bin/true", Dir: "/", Env: []string{"BIG=" + strings.Repeat("x", spawnProgMax)}}).encode()
	if err == nil || !strings.Contains(err.Error(), "process spec too large") {
		t.Fatalf("err = %v", err)
	}
}

func TestStepFailure(t *testing.T) {
	p := buildSpawnProgram(spawnSpec{Path: "nosuch", Args: []string{"nosuch"}, Dir: "/x"})
	_, names, err := p.encode()
	if err != nil {
		t.Fatal(err)
	}
	addrOf := func(name string) uint64 {
		for a, n := range names {
			if n == name {
				return a
			}
		}
		t.Fatalf("no step %q", name)
		return 0
	}
	errno := func(e unix.Errno) uint64 { return uint64(-int64(e)) }
	var notFound garden.ExecutableNotFoundError
	if err := stepFailure(spawnSpec{Path: "nosuch"}, names, addrOf("exec"), errno(unix.ENOENT)); !errors.As(err, &notFound) ||
		!strings.Contains(err.Error(), `"nosuch": executable file not found in $PATH`) {
		t.Errorf("exec ENOENT = %v", err)
	}
	if err := stepFailure(spawnSpec{Path: "/bin/x"}, names, addrOf("exec"), errno(unix.ENOENT)); !errors.As(err, &notFound) {
		t.Errorf("exec ENOENT of a path = %v", err)
	}
	if err := stepFailure(spawnSpec{Path: "x"}, names, addrOf("exec"), errno(unix.EACCES)); errors.As(err, &notFound) || !errors.Is(err, unix.EACCES) {
		t.Errorf("exec EACCES = %v", err)
	}
	if err := stepFailure(spawnSpec{}, names, addrOf("chdir to /x"), errno(unix.ENOTDIR)); err == nil ||
		err.Error() != "start process: chdir to /x: not a directory" {
		t.Errorf("chdir = %v", err)
	}
	if err := stepFailure(spawnSpec{}, names, 0, errno(unix.EAGAIN)); err == nil || !strings.Contains(err.Error(), "could not fork") {
		t.Errorf("vfork = %v", err)
	}
}

// hostInit runs garden-init on the host with a spawn socket in a
// directory of its own, as a container would have it.
func hostInit(t *testing.T) (dir string, cmd *exec.Cmd) {
	t.Helper()
	roottest.Require(t)
	dir = t.TempDir()
	path, err := installInit(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := listenSpawn(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Descriptors this test inherited stay out of init, as runc keeps
	// them out of a container's.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(path)
	cmd.ExtraFiles = []*os.File{sock}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sock.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return dir, cmd
}

// spawnPiped starts spec through the init in dir with pipes for stdio and
// returns the process and its combined output once it has exited.
func spawnPiped(t *testing.T, dir string, spec spawnSpec) (*spawned, *os.File, error) {
	t.Helper()
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	defer inR.Close()
	defer outW.Close()
	inW.Close()
	sp, err := spawn(dir, spec, []*os.File{inR, outW, outW})
	if err != nil {
		outR.Close()
		return nil, nil, err
	}
	return sp, outR, nil
}

func TestSpawnOnHost(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("built-in init is amd64 only")
	}
	dir, init := hostInit(t)
	spec := spawnSpec{
		Path: "sh", Args: []string{"sh", "-c", `echo "$A $(pwd) $$"; ls /proc/self/fd; exit 3`},
		Env: []string{"PATH=/nonexistent:/usr/bin:/bin", "A=hello"}, Dir: "/tmp",
	}
	sp, out, err := spawnPiped(t, dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The pid reported is the process's, as the host sees it: its parent
	// is the shim, a child of init.
	status, _ := os.ReadFile(filepath.Join("/proc", itoa(sp.pid), "status"))
	if !strings.Contains(string(status), "PPid:\t"+itoa(sp.shim)+"\n") {
		t.Errorf("pid %d is not the shim %d's child:\n%s", sp.pid, sp.shim, status)
	}
	shimStatus, _ := os.ReadFile(filepath.Join("/proc", itoa(sp.shim), "status"))
	if !strings.Contains(string(shimStatus), "PPid:\t"+itoa(init.Process.Pid)+"\n") {
		t.Errorf("shim %d is not init %d's child:\n%s", sp.shim, init.Process.Pid, shimStatus)
	}
	code, err := sp.wait()
	if err != nil || code != 3 {
		t.Fatalf("exit = %d, %v", code, err)
	}
	data := make([]byte, 4096)
	n, _ := out.Read(data)
	out.Close()
	lines := strings.Split(strings.TrimSpace(string(data[:n])), "\n")
	if len(lines) < 1 || lines[0] != "hello /tmp "+itoa(sp.pid) {
		t.Fatalf("output %q, want hello /tmp %d first", data[:n], sp.pid)
	}
	// Only stdio (and ls's own directory) are open: neither the spawn
	// socket nor the connection reaches the process.
	if fds := lines[1:]; !reflect.DeepEqual(fds, []string{"0", "1", "2", "3"}) {
		t.Errorf("process has descriptors %q", fds)
	}

	// A killed process reports 128+signal.
	sp, out, err = spawnPiped(t, dir, spawnSpec{Path: "/bin/sleep", Args: []string{"sleep", "100"}, Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	syscall.Kill(sp.pid, syscall.SIGKILL)
	if code, err := sp.wait(); err != nil || code != 137 {
		t.Fatalf("killed = %d, %v", code, err)
	}

	// Failures name the step, and nothing runs.
	var notFound garden.ExecutableNotFoundError
	if _, _, err := spawnPiped(t, dir, spawnSpec{Path: "nosuch", Args: []string{"nosuch"}, Dir: "/", Env: []string{"PATH=/bin"}}); !errors.As(err, &notFound) {
		t.Errorf("missing executable = %v", err)
	}
	if _, _, err := spawnPiped(t, dir, spawnSpec{Path: "/bin/true", Args: []string{"true"}, Dir: "/nonexistent"}); err == nil ||
		err.Error() != "start process: chdir to /nonexistent: no such file or directory" {
		t.Errorf("bad dir = %v", err)
	}

	// Many at once: init keeps accepting while shims run.
	done := make(chan error, 20)
	for range 20 {
		go func() {
			sp, out, err := spawnPiped(t, dir, spawnSpec{Path: "/bin/true", Args: []string{"true"}, Dir: "/"})
			if err == nil {
				out.Close()
				var code int
				if code, err = sp.wait(); err == nil && code != 0 {
					err = errors.New("exit " + itoa(code))
				}
			}
			done <- err
		}()
	}
	for range 20 {
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("concurrent spawns hang")
		}
	}
}

// TestInitCodeMatchesSource reassembles garden-init and compares it with
// the committed initcode.go.
func TestInitCodeMatchesSource(t *testing.T) {
	for _, tool := range []string{"as", "ld", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			if roottest.Required() {
				t.Fatalf("%s (binutils) is needed to check initcode.go: %v", tool, err)
			}
			t.Skipf("%s (binutils) not installed", tool)
		}
	}
	out := filepath.Join(t.TempDir(), "initcode.go")
	if msg, err := exec.Command("../../hack/gen-init.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("gen-init: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("initcode.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("initcode.go is not what initsrc/garden-init-amd64.S assembles to: run `make init`")
	}
}
