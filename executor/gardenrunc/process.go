package gardenrunc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

// process is one `runc exec` run in the foreground as the server's child:
// runc waits for the process and exits with its status (128+n for signal
// n). Its output is read by two pumps and fanned out to every attached
// writer; Wait returns after the pumps have delivered everything.
type process struct {
	id      string
	pidFile string
	cmd     *exec.Cmd
	stdin   *os.File // runc's stdin, or the pty master
	tty     *os.File // pty master, nil without a terminal

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

// ptyPair opens a pseudo-terminal: the master stays with the server, the
// slave becomes runc's stdio (runc then sizes the container's own pty from
// it and relays between the two).
func ptyPair(ws garden.WindowSize) (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	if err := setWinsize(master, ws); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

func setWinsize(f *os.File, ws garden.WindowSize) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Columns})
}

// windowSize fills the 80x24 default.
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

// startProcess runs `runc exec` for the process file in dir and returns
// once the process has started (its pid file exists) or runc has failed.
func startProcess(r runcCLI, handle, id, dir string, tty *garden.TTYSpec, pio garden.ProcessIO) (*process, error) {
	p := &process{id: id, pidFile: filepath.Join(dir, "pid"), done: make(chan struct{})}
	args := []string{"exec", "--process", filepath.Join(dir, "process.json"), "--pid-file", p.pidFile}
	var childFiles []*os.File
	var stdoutR, stderrR *os.File
	// The process outlives any request: nothing cancels runc but a signal.
	cmd := r.command(context.Background(), append(args, handle)...)
	if tty != nil {
		master, slave, err := ptyPair(windowSize(tty))
		if err != nil {
			return nil, fmt.Errorf("allocate tty: %w", err)
		}
		cmd.Args = append(cmd.Args[:len(cmd.Args)-1], "--tty", handle)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		childFiles = append(childFiles, slave)
		p.tty, p.stdin, stdoutR = master, master, master
	} else {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			return nil, err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			outR.Close()
			outW.Close()
			return nil, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
		childFiles = append(childFiles, inR, outW, errW)
		p.stdin, stdoutR, stderrR = inW, outR, errR
	}
	// runc must survive the server's signals (Ctrl-C in a terminal) so
	// processes keep running across a server restart.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd = cmd
	p.attach(pio)
	err := cmd.Start()
	for _, f := range childFiles {
		f.Close()
	}
	if err != nil {
		p.stdin.Close()
		if stderrR != nil {
			stderrR.Close()
			stdoutR.Close()
		}
		return nil, fmt.Errorf("start runc exec: %w", err)
	}
	p.pumps.Add(1)
	go p.pump(stdoutR, false)
	if stderrR != nil {
		p.pumps.Add(1)
		go p.pump(stderrR, true)
	}
	go p.wait()
	if pio.Stdin != nil {
		go p.copyStdin(pio.Stdin, true)
	}
	return p, p.awaitStart()
}

// awaitStart polls for the pid file, which runc writes only once the
// process runs; runc exiting first means the start failed.
func (p *process) awaitStart() error {
	tick := 100 * time.Microsecond
	for {
		if _, err := os.Stat(p.pidFile); err == nil {
			return nil
		}
		select {
		case <-p.done:
			if _, err := os.Stat(p.pidFile); err == nil {
				return nil
			}
			return p.startError()
		case <-time.After(tick):
			if tick < time.Millisecond {
				tick *= 2
			}
		}
	}
}

func (p *process) startError() error {
	p.mu.Lock()
	msg := strings.TrimSpace(p.startErr.String())
	p.mu.Unlock()
	if msg == "" {
		msg = fmt.Sprintf("runc exec failed with status %d", p.status)
	}
	if strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory") {
		return garden.ExecutableNotFoundError{Message: msg}
	}
	return errors.New(msg)
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

// pump copies one output stream to the attached writers until EOF (or
// EIO, how a pty master reports that the last slave closed).
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
			if p.startErr.Len() < 4096 && (stderr || p.tty != nil) {
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

func (p *process) wait() {
	err := p.cmd.Wait()
	status := 0
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		status = exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = 128 + int(ws.Signal())
		}
	default:
		p.err = err
	}
	// For a tty the pump ends when the slave's last holder (runc) is
	// gone, which is now.
	p.pumps.Wait()
	p.stdinMu.Lock()
	if !p.stdinClosed {
		p.stdinClosed = true
		p.stdin.Close()
	}
	p.stdinMu.Unlock()
	p.status, p.exited = status, time.Now()
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
	if p.tty == nil || spec.WindowSize == nil {
		return nil
	}
	if p.exitedNow() {
		return nil
	}
	if err := setWinsize(p.tty, windowSize(&spec)); err != nil {
		return err
	}
	// runc resizes the container's terminal from ours on SIGWINCH.
	return p.cmd.Process.Signal(syscall.SIGWINCH)
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
	data, err := os.ReadFile(p.pidFile)
	if err != nil {
		return fmt.Errorf("process %s: pid: %w", p.id, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("process %s: pid file: %w", p.id, err)
	}
	if err := syscall.Kill(pid, s); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process %s: %w", p.id, err)
	}
	return nil
}

// attachment is a Process handle for one Attach: the process, plus the
// attacher's stdin forwarded.
type attachment struct{ *process }

var _ garden.Process = attachment{}
