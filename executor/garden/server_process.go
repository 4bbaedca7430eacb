package garden

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Output buffering between a process and its output connection.
const (
	// streamChunks and streamBytes bound the output waiting for a
	// connection that has not attached (yet): more is dropped, as upstream
	// does, so a process nobody listens to costs at most this much.
	streamChunks = 4000
	streamBytes  = 1 << 20
	// streamLinger is how long the output of an exited process waits for
	// its connection before it is dropped.
	streamLinger = time.Minute
)

// streamHeader starts every hijacked response: it claims chunked encoding
// (so upstream clients do not treat the response as close-delimited) and
// is followed by raw, unchunked bytes.
func streamHeader(status int) string {
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
		status, http.StatusText(status))
}

func (s *Server) run(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
	var spec ProcessSpec
	if err := decode(r, &spec); err != nil {
		return nil, err
	}
	return s.stream(w, r, http.StatusCreated, func(pio ProcessIO) (Process, error) {
		return c.Run(r.Context(), spec, pio)
	})
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request, c Container) (any, error) {
	pid := r.PathValue("pid")
	return s.stream(w, r, http.StatusOK, func(pio ProcessIO) (Process, error) {
		return c.Attach(r.Context(), pid, pio)
	})
}

// stream runs the control connection of a Run or Attach: the process is
// started (or found) with buffered output streams registered under a new
// stream ID, then the connection is hijacked and carries the first message,
// client payloads, and the terminal exit message.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, status int, start func(ProcessIO) (Process, error)) (any, error) {
	sid := itoa(int(s.nextStreamID.Add(1)))
	stdout, stderr := s.streams.open(sid, "stdout"), s.streams.open(sid, "stderr")
	stdinR, stdinW := io.Pipe()
	proc, err := start(ProcessIO{Stdin: stdinR, Stdout: stdout, Stderr: stderr})
	if err != nil {
		stdinW.Close()
		s.streams.drop(stdout)
		s.streams.drop(stderr)
		return nil, err
	}
	conn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		stdinW.Close()
		return nil, fmt.Errorf("hijack: %w", err)
	}
	s.trackHijacked(conn, true)
	defer s.trackHijacked(conn, false)
	defer conn.Close()

	var writeMu sync.Mutex
	send := func(msg ProcessPayload) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		return json.NewEncoder(conn).Encode(msg)
	}
	if _, err := io.WriteString(conn, streamHeader(status)); err == nil {
		_ = send(ProcessPayload{ProcessID: proc.ID(), StreamID: sid})
	}
	go s.readPayloads(brw.Reader, proc, stdinW)

	code, werr := proc.Wait()
	// Wait returned after every byte reached the streams: closing them
	// lets the output connections drain and end.
	stdout.finish()
	stderr.finish()
	if werr != nil {
		msg := werr.Error()
		_ = send(ProcessPayload{ProcessID: proc.ID(), Error: &msg})
	} else {
		_ = send(ProcessPayload{ProcessID: proc.ID(), ExitStatus: &code})
	}
	return nil, nil
}

// readPayloads applies the client's messages until it goes away; that
// closes the process's stdin but leaves the process running.
func (s *Server) readPayloads(br *bufio.Reader, proc Process, stdin *io.PipeWriter) {
	defer stdin.Close()
	dec := json.NewDecoder(br)
	for {
		var msg ProcessPayload
		if err := dec.Decode(&msg); err != nil {
			return
		}
		switch {
		case msg.TTY != nil:
			if err := proc.SetTTY(*msg.TTY); err != nil {
				s.logger.Warn("resize process tty", "process_id", proc.ID(), "error", err)
			}
		case msg.Source != nil:
			if *msg.Source != ProcessStreamSourceStdin {
				return
			}
			if msg.Data == nil {
				return
			}
			if _, err := stdin.Write([]byte(*msg.Data)); err != nil {
				return
			}
		case msg.Signal != nil:
			if *msg.Signal != SignalTerminate && *msg.Signal != SignalKill {
				return
			}
			if err := proc.Signal(*msg.Signal); err != nil {
				s.logger.Warn("signal process", "process_id", proc.ID(), "error", err)
			}
		default:
			return
		}
	}
}

// attachOutput serves /attaches/SID/stdout|stderr: raw output bytes until
// the process has exited and its output is drained. An unknown stream is
// an empty stream, as upstream.
func (s *Server) attachOutput(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		handle := r.PathValue("handle")
		s.reaper.pause(handle)
		defer s.reaper.resume(handle)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		s.trackHijacked(conn, true)
		defer s.trackHijacked(conn, false)
		defer conn.Close()
		if _, err := io.WriteString(conn, streamHeader(http.StatusOK)); err != nil {
			return
		}
		st := s.streams.take(r.PathValue("streamid"), name)
		if st == nil {
			return
		}
		st.drain(conn)
	}
}

// streamRegistry holds output streams until their connection takes them.
type streamRegistry struct {
	mu      sync.Mutex
	streams map[string]*outStream
}

func newStreamRegistry() *streamRegistry {
	return &streamRegistry{streams: map[string]*outStream{}}
}

func (r *streamRegistry) open(sid, name string) *outStream {
	st := &outStream{key: sid + "/" + name, ch: make(chan []byte, streamChunks), gone: make(chan struct{}), done: make(chan struct{})}
	r.mu.Lock()
	r.streams[st.key] = st
	r.mu.Unlock()
	st.registry = r
	return st
}

// take hands the stream to its connection, once.
func (r *streamRegistry) take(sid, name string) *outStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.streams[sid+"/"+name]
	delete(r.streams, sid+"/"+name)
	if st != nil {
		st.mu.Lock()
		st.attached = true
		st.mu.Unlock()
	}
	return st
}

func (r *streamRegistry) drop(st *outStream) {
	r.mu.Lock()
	if r.streams[st.key] == st {
		delete(r.streams, st.key)
	}
	r.mu.Unlock()
}

// outStream is one output stream of one Run or Attach call. Writes never
// block while no connection is attached (chunks beyond the buffer are
// dropped); once attached, they wait for the connection so a reader that is
// merely slow loses nothing. ch is never closed (a late write must not
// panic); done marks the end instead. attached is guarded by mu.
type outStream struct {
	key      string
	registry *streamRegistry
	ch       chan []byte
	gone     chan struct{} // closed when the connection is finished with the stream

	finishOnce sync.Once
	done       chan struct{} // closed by finish

	mu       sync.Mutex
	attached bool
	buffered int // bytes written while unattached
}

var errStreamFinished = errors.New("output stream finished")

func (st *outStream) Write(p []byte) (int, error) {
	select {
	case <-st.done:
		return 0, errStreamFinished
	default:
	}
	st.mu.Lock()
	attached := st.attached
	if !attached {
		if st.buffered+len(p) > streamBytes {
			st.mu.Unlock()
			return len(p), nil
		}
		st.buffered += len(p)
	}
	st.mu.Unlock()
	chunk := append([]byte(nil), p...)
	if !attached {
		select {
		case st.ch <- chunk:
		default:
		}
		return len(p), nil
	}
	select {
	case st.ch <- chunk:
	case <-st.gone:
	case <-st.done:
		return 0, errStreamFinished
	}
	return len(p), nil
}

// finish ends the stream: the connection drains what is buffered and
// closes. Output nobody attached for is dropped after streamLinger.
func (st *outStream) finish() {
	st.finishOnce.Do(func() {
		close(st.done)
		time.AfterFunc(streamLinger, func() { st.registry.drop(st) })
	})
}

func (st *outStream) drain(conn net.Conn) {
	defer close(st.gone)
	for {
		select {
		case chunk := <-st.ch:
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		case <-st.done:
			for {
				select {
				case chunk := <-st.ch:
					if _, err := conn.Write(chunk); err != nil {
						return
					}
				default:
					return
				}
			}
		}
	}
}
