package garden

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// clientProcess is a Process reached over a control connection. Its
// output arrives on connections of their own, copied by goroutines the
// process owns; Wait returns once the exit status and every output stream
// are in.
type clientProcess struct {
	id   string
	conn net.Conn
	dec  *json.Decoder

	// writeMu serialises payloads on the control connection (stdin,
	// resize, signal).
	writeMu sync.Mutex

	outputs sync.WaitGroup
	done    chan struct{} // closed when the terminal message (or EOF) is read
	status  int
	err     error
}

var _ Process = (*clientProcess)(nil)

func newClientProcess(id string, conn net.Conn, dec *json.Decoder) *clientProcess {
	return &clientProcess{id: id, conn: conn, dec: dec, done: make(chan struct{})}
}

func (p *clientProcess) ID() string { return p.id }

// copyOutput pumps one output connection into w until the server closes it.
func (p *clientProcess) copyOutput(conn net.Conn, br *bufio.Reader, w io.Writer) {
	p.outputs.Add(1)
	go func() {
		defer p.outputs.Done()
		defer conn.Close()
		_, _ = io.Copy(w, br)
	}()
}

// start begins reading the control connection and, if stdin is set,
// forwarding it.
func (p *clientProcess) start(stdin io.Reader) {
	go p.readMessages()
	if stdin != nil {
		go p.forwardStdin(stdin)
	}
}

func (p *clientProcess) readMessages() {
	defer close(p.done)
	defer p.conn.Close()
	for {
		var msg ProcessPayload
		if err := p.dec.Decode(&msg); err != nil {
			p.err = fmt.Errorf("%w: %v", errProcessStream, err)
			return
		}
		switch {
		case msg.Error != nil:
			p.err = fmt.Errorf("connection: process error: %s", *msg.Error)
			return
		case msg.ExitStatus != nil:
			p.status = *msg.ExitStatus
			return
		}
	}
}

func (p *clientProcess) forwardStdin(stdin io.Reader) {
	buf := make([]byte, 32*1024)
	src := ProcessStreamSourceStdin
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			data := string(buf[:n])
			if p.send(ProcessPayload{ProcessID: p.id, Source: &src, Data: &data}) != nil {
				return
			}
		}
		if err != nil {
			_ = p.send(ProcessPayload{ProcessID: p.id, Source: &src})
			return
		}
	}
}

func (p *clientProcess) send(msg ProcessPayload) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	select {
	case <-p.done:
		return errors.New("process stream closed")
	default:
	}
	return json.NewEncoder(p.conn).Encode(msg)
}

func (p *clientProcess) Wait() (int, error) {
	<-p.done
	p.outputs.Wait()
	return p.status, p.err
}

func (p *clientProcess) SetTTY(spec TTYSpec) error {
	return p.send(ProcessPayload{ProcessID: p.id, TTY: &spec})
}

func (p *clientProcess) Signal(sig Signal) error {
	return p.send(ProcessPayload{ProcessID: p.id, Signal: &sig})
}
