package gardenrunc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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

// process is a process started with `runc exec --detach`. runc exits once
// the process runs; the process is then the server's child (the server is
// a subreaper), so its exit status comes from wait4.
//
// Its stdout and stderr are FIFOs in the process directory that the
// process holds open for reading and writing: if the server goes away,
// writes never fail (they wait, 64 KiB on, for a reader) and a restarted
// server reopens the FIFOs and carries on. Output is read by two pumps and
// fanned out to every attached writer; Wait returns after the pumps have
// delivered everything.
type process struct {
	id  string
	dir string
	pid int

	stdin   *os.File   // the process's stdin pipe, or the pty master; nil once restored
	tty     *os.File   // pty master, nil without a terminal
	readers []*os.File // the server's ends of the output streams

	// stdinMu serialises writes and the close of stdin.
	stdinMu     sync.Mutex
	stdinClosed bool

	// mu guards the writer lists and startErr.
	mu       sync.Mutex
	outs     []io.Writer
	errs     []io.Writer
	startErr bytes.Buffer // runc's complaint when the process never started

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

// startProcess runs `runc exec --detach` for the process file in dir and
// returns once the process runs, or with runc's error.
func startProcess(r runcCLI, handle, id, dir string, tty *garden.TTYSpec, pio garden.ProcessIO) (*process, error) {
	p := &process{id: id, dir: dir, done: make(chan struct{})}
	pidFile := filepath.Join(dir, "pid")
	args := []string{"exec", "--detach", "--process", filepath.Join(dir, "process.json"), "--pid-file", pidFile}
	// The process outlives any request: nothing cancels runc but its end.
	cmd := r.command(context.Background())
	var (
		childFiles []*os.File
		readers    []*os.File
		console    net.Listener
		runcErr    bytes.Buffer
	)
	closeAll := func() {
		for _, f := range append(childFiles, readers...) {
			f.Close()
		}
		if p.stdin != nil {
			p.stdin.Close()
		}
	}
	if tty != nil {
		sock := filepath.Join(dir, "console.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("console socket: %w", err)
		}
		console = l
		defer console.Close()
		args = append(args, "--tty", "--console-socket", sock)
		cmd.Stdout, cmd.Stderr = &runcErr, &runcErr
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		childFiles, p.stdin = append(childFiles, inR), inW
		for _, name := range []string{"stdout", "stderr"} {
			child, server, err := outputFIFO(filepath.Join(dir, name))
			if err != nil {
				closeAll()
				return nil, err
			}
			childFiles, readers = append(childFiles, child), append(readers, server)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, childFiles[1], childFiles[2]
	}
	cmd.Args = append(cmd.Args, append(args, handle)...)
	p.attach(pio)
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("start runc exec: %w", err)
	}
	for _, f := range childFiles {
		f.Close()
	}
	childFiles = nil
	if console != nil {
		master, err := receiveConsole(console, cmd)
		if err != nil {
			_ = cmd.Wait()
			return nil, p.startFailure(err, runcErr.String())
		}
		p.tty, p.stdin = master, master
		readers = append(readers, master)
	}
	p.readers = readers
	for i, r := range readers {
		p.pumps.Add(1)
		go p.pump(r, i == 1)
	}
	if err := cmd.Wait(); err != nil {
		// runc wrote why on stderr, which the pump has read (runc's
		// end is gone, so the pumps end too).
		p.pumps.Wait()
		closeAll()
		p.mu.Lock()
		msg := p.startErr.String()
		p.mu.Unlock()
		return nil, p.startFailure(err, msg+runcErr.String())
	}
	pid, err := readPid(pidFile)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.pid = pid // also ends the pumps' capture of runc's errors
	p.mu.Unlock()
	if err := writeRecord(dir, processRecord{ID: id, Pid: pid, StartTime: procStartTime(pid), TTY: tty != nil}); err != nil {
		return nil, err
	}
	go p.waitChild()
	if pio.Stdin != nil {
		go p.copyStdin(pio.Stdin, true)
	}
	return p, nil
}

// receiveConsole takes the pty master runc sends over the console socket
// (or gives up when runc exits first).
func receiveConsole(l net.Listener, cmd interface{ Wait() error }) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer conn.Close()
		uc := conn.(*net.UnixConn)
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			ch <- result{nil, fmt.Errorf("console socket: no control message: %v", err)}
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) == 0 {
			ch <- result{nil, fmt.Errorf("console socket: no fd: %v", err)}
			return
		}
		ch <- result{os.NewFile(uintptr(fds[0]), "pty-master"), nil}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-time.After(30 * time.Second):
		l.Close()
		return nil, errors.New("runc never sent the console")
	}
}

func (p *process) startFailure(err error, msg string) error {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		msg = fmt.Sprintf("runc exec: %v", err)
	}
	if strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory") {
		return garden.ExecutableNotFoundError{Message: msg}
	}
	return errors.New(msg)
}

func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("process pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("process pid file: %w", err)
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
	p := &process{id: rec.ID, dir: dir, pid: rec.Pid, done: make(chan struct{}), stdinClosed: true}
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
			if p.pid == 0 && p.startErr.Len() < 4096 {
				p.startErr.Write(buf[:n])
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

// waitChild reaps the process (the server's child since runc exited).
func (p *process) waitChild() {
	var ws unix.WaitStatus
	status, err := 0, error(nil)
	for {
		_, werr := unix.Wait4(p.pid, &ws, 0, nil)
		if errors.Is(werr, unix.EINTR) {
			continue
		}
		if werr != nil {
			err = fmt.Errorf("wait for process %s: %w", p.id, werr)
		}
		break
	}
	switch {
	case err != nil:
	case ws.Signaled():
		status = 128 + int(ws.Signal())
	default:
		status = ws.ExitStatus()
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
