package garden

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTPClient is a Client speaking the Garden protocol. As upstream, every
// request uses a new connection (no keep-alive), and the dial address is
// fixed at construction: URLs carry the host "api".
type HTTPClient struct {
	network, address string
	dialer           net.Dialer
	http             *http.Client
}

var _ Client = (*HTTPClient)(nil)

// NewClient returns a client for a server listening on network ("unix" or
// "tcp") at address (a socket path or host:port).
func NewClient(network, address string) *HTTPClient {
	c := &HTTPClient{network: network, address: address, dialer: net.Dialer{Timeout: 10 * time.Second}}
	c.http = &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dial(ctx)
		},
	}}
	return c
}

func (c *HTTPClient) dial(ctx context.Context) (net.Conn, error) {
	return c.dialer.DialContext(ctx, c.network, c.address)
}

// do sends one request and decodes a 2xx JSON answer into out (which may be
// nil to discard it; the body must still be JSON, as upstream checks).
func (c *HTTPClient) do(ctx context.Context, route string, params []string, query url.Values, in, out any) error {
	resp, err := c.send(ctx, route, params, query, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		out = new(json.RawMessage)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("bad response: %w", err)
	}
	return nil
}

// send sends one request and returns a 2xx response with its body unread;
// other statuses become the error they carry.
func (c *HTTPClient) send(ctx context.Context, route string, params []string, query url.Values, in any) (*http.Response, error) {
	var (
		body        io.Reader
		contentType string
	)
	switch v := in.(type) {
	case nil:
	case io.Reader:
		body, contentType = v, "application/x-tar"
	default:
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(v); err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body, contentType = &buf, "application/json"
	}
	req, err := newRequest(ctx, route, params, query, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp.Body)
	}
	return resp, nil
}

func newRequest(ctx context.Context, route string, params []string, query url.Values, body io.Reader) (*http.Request, error) {
	method, path := routeMethodPath(route, params...)
	u := "http://api" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return http.NewRequestWithContext(ctx, method, u, body)
}

// decodeError turns a non-2xx body into the error it carries.
func decodeError(r io.Reader) error {
	var w wireError
	if err := json.NewDecoder(r).Decode(&w); err != nil {
		return fmt.Errorf("bad response: %w", err)
	}
	return w.toError()
}

// Ping implements Client.
func (c *HTTPClient) Ping(ctx context.Context) error {
	return c.do(ctx, routePing, nil, nil, nil, nil)
}

// Capacity implements Client.
func (c *HTTPClient) Capacity(ctx context.Context) (Capacity, error) {
	var capacity Capacity
	err := c.do(ctx, routeCapacity, nil, nil, nil, &capacity)
	return capacity, err
}

// Create implements Client.
func (c *HTTPClient) Create(ctx context.Context, spec ContainerSpec) (Container, error) {
	var out struct {
		Handle string `json:"handle"`
	}
	if err := c.do(ctx, routeCreate, nil, nil, spec, &out); err != nil {
		return nil, err
	}
	return c.container(out.Handle), nil
}

// Destroy implements Client.
func (c *HTTPClient) Destroy(ctx context.Context, handle string) error {
	return c.do(ctx, routeDestroy, []string{handle}, nil, nil, nil)
}

// Containers implements Client.
func (c *HTTPClient) Containers(ctx context.Context, filter Properties) ([]Container, error) {
	query := url.Values{}
	for k, v := range filter {
		query.Set(k, v)
	}
	var out struct {
		Handles []string `json:"Handles"`
	}
	if err := c.do(ctx, routeList, nil, query, nil, &out); err != nil {
		return nil, err
	}
	containers := make([]Container, 0, len(out.Handles))
	for _, h := range out.Handles {
		containers = append(containers, c.container(h))
	}
	return containers, nil
}

// Lookup implements Client. Like upstream it searches the unfiltered list,
// so a container still being created is not found.
func (c *HTTPClient) Lookup(ctx context.Context, handle string) (Container, error) {
	containers, err := c.Containers(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, ct := range containers {
		if ct.Handle() == handle {
			return ct, nil
		}
	}
	return nil, ContainerNotFoundError{Handle: handle}
}

// BulkInfo implements Client.
func (c *HTTPClient) BulkInfo(ctx context.Context, handles []string) (map[string]ContainerInfoEntry, error) {
	out := map[string]ContainerInfoEntry{}
	err := c.do(ctx, routeBulkInfo, nil, url.Values{"handles": {strings.Join(handles, ",")}}, nil, &out)
	return out, err
}

// BulkMetrics implements Client.
func (c *HTTPClient) BulkMetrics(ctx context.Context, handles []string) (map[string]ContainerMetricsEntry, error) {
	out := map[string]ContainerMetricsEntry{}
	err := c.do(ctx, routeBulkMetrics, nil, url.Values{"handles": {strings.Join(handles, ",")}}, nil, &out)
	return out, err
}

func (c *HTTPClient) container(handle string) *clientContainer {
	return &clientContainer{client: c, handle: handle}
}

// clientContainer is a Container reached through an HTTPClient.
type clientContainer struct {
	client *HTTPClient
	handle string
}

var _ Container = (*clientContainer)(nil)

func (c *clientContainer) Handle() string { return c.handle }

func (c *clientContainer) do(ctx context.Context, route string, extra []string, query url.Values, in, out any) error {
	return c.client.do(ctx, route, append([]string{c.handle}, extra...), query, in, out)
}

func (c *clientContainer) Stop(ctx context.Context, kill bool) error {
	return c.do(ctx, routeStop, nil, nil, stopRequest{Kill: kill}, nil)
}

func (c *clientContainer) Info(ctx context.Context) (ContainerInfo, error) {
	var info ContainerInfo
	err := c.do(ctx, routeInfo, nil, nil, nil, &info)
	return info, err
}

func (c *clientContainer) StreamIn(ctx context.Context, spec StreamInSpec) error {
	query := url.Values{"user": {spec.User}, "destination": {spec.Path}}
	tar := spec.TarStream
	if tar == nil {
		tar = bytes.NewReader(nil)
	}
	// Hide any Len method so the body goes out chunked, as upstream's
	// arbitrary reader does.
	resp, err := c.client.send(ctx, routeStreamIn, []string{c.handle}, query, io.MultiReader(tar))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func (c *clientContainer) StreamOut(ctx context.Context, spec StreamOutSpec) (io.ReadCloser, error) {
	query := url.Values{"user": {spec.User}, "source": {spec.Path}}
	resp, err := c.client.send(ctx, routeStreamOut, []string{c.handle}, query, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *clientContainer) CurrentBandwidthLimits(ctx context.Context) (BandwidthLimits, error) {
	var l BandwidthLimits
	err := c.do(ctx, routeCurrentBandwidthLimits, nil, nil, nil, &l)
	return l, err
}

func (c *clientContainer) CurrentCPULimits(ctx context.Context) (CPULimits, error) {
	var l CPULimits
	err := c.do(ctx, routeCurrentCPULimits, nil, nil, nil, &l)
	return l, err
}

func (c *clientContainer) CurrentDiskLimits(ctx context.Context) (DiskLimits, error) {
	var l DiskLimits
	err := c.do(ctx, routeCurrentDiskLimits, nil, nil, nil, &l)
	return l, err
}

func (c *clientContainer) CurrentMemoryLimits(ctx context.Context) (MemoryLimits, error) {
	var l MemoryLimits
	err := c.do(ctx, routeCurrentMemoryLimits, nil, nil, nil, &l)
	return l, err
}

func (c *clientContainer) NetIn(ctx context.Context, hostPort, containerPort uint32) (uint32, uint32, error) {
	var out netInMessage
	err := c.do(ctx, routeNetIn, nil, nil, netInMessage{Handle: c.handle, HostPort: hostPort, ContainerPort: containerPort}, &out)
	return out.HostPort, out.ContainerPort, err
}

func (c *clientContainer) NetOut(ctx context.Context, rule NetOutRule) error {
	return c.do(ctx, routeNetOut, nil, nil, rule, nil)
}

func (c *clientContainer) BulkNetOut(ctx context.Context, rules []NetOutRule) error {
	if rules == nil {
		rules = []NetOutRule{}
	}
	return c.do(ctx, routeBulkNetOut, nil, nil, rules, nil)
}

func (c *clientContainer) Metrics(ctx context.Context) (Metrics, error) {
	var m Metrics
	err := c.do(ctx, routeMetrics, nil, nil, nil, &m)
	return m, err
}

func (c *clientContainer) SetGraceTime(ctx context.Context, graceTime time.Duration) error {
	return c.do(ctx, routeSetGraceTime, nil, nil, graceTime, nil)
}

func (c *clientContainer) Properties(ctx context.Context) (Properties, error) {
	var p Properties
	err := c.do(ctx, routeProperties, nil, nil, nil, &p)
	return p, err
}

func (c *clientContainer) Property(ctx context.Context, name string) (string, error) {
	var out propertyMessage
	err := c.do(ctx, routeProperty, []string{name}, nil, nil, &out)
	return out.Value, err
}

func (c *clientContainer) SetProperty(ctx context.Context, name, value string) error {
	return c.do(ctx, routeSetProperty, []string{name}, nil, propertyMessage{Value: value}, nil)
}

func (c *clientContainer) RemoveProperty(ctx context.Context, name string) error {
	return c.do(ctx, routeRemoveProperty, []string{name}, nil, nil, nil)
}

func (c *clientContainer) Run(ctx context.Context, spec ProcessSpec, pio ProcessIO) (Process, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode process spec: %w", err)
	}
	return c.stream(ctx, routeRun, []string{c.handle}, append(body, '\n'), pio)
}

func (c *clientContainer) Attach(ctx context.Context, processID string, pio ProcessIO) (Process, error) {
	return c.stream(ctx, routeAttach, []string{c.handle, processID}, nil, pio)
}

// stream opens a control connection (Run or Attach) and the output
// connections the caller asked for.
func (c *clientContainer) stream(ctx context.Context, route string, params []string, body []byte, pio ProcessIO) (Process, error) {
	conn, br, err := c.client.hijack(ctx, route, params, body)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(br)
	var first ProcessPayload
	if err := dec.Decode(&first); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read process stream: %w", err)
	}
	p := newClientProcess(first.ProcessID, conn, dec)
	for _, out := range []struct {
		route string
		w     io.Writer
	}{{routeStdout, pio.Stdout}, {routeStderr, pio.Stderr}} {
		if out.w == nil {
			continue
		}
		oconn, obr, err := c.client.hijack(ctx, out.route, []string{c.handle, first.ProcessID, first.StreamID}, nil)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("attach output: %w", err)
		}
		p.copyOutput(oconn, obr, out.w)
	}
	p.start(pio.Stdin)
	return p, nil
}

// hijack sends one request on a connection of its own and, on a 2xx
// answer, hands back the connection with the bytes after the header.
func (c *HTTPClient) hijack(ctx context.Context, route string, params []string, body []byte) (net.Conn, *bufio.Reader, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := newRequest(ctx, route, params, nil, r)
	if err != nil {
		return nil, nil, err
	}
	if body != nil || route != routeAttach {
		req.Header.Set("Content-Type", "application/json")
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Bound the exchange of headers by ctx; the stream itself is not.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if stop() {
			_ = conn.SetDeadline(time.Time{})
		}
	}()
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer conn.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var w wireError
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, nil, fmt.Errorf("Backend error: Exit status: %d, Body: %s", resp.StatusCode, data)
		}
		return nil, nil, w.toError()
	}
	return conn, br, nil
}

// ProcessPayload is one JSON message on a process control connection, in
// either direction.
type ProcessPayload struct {
	ProcessID  string               `json:"process_id,omitempty"`
	StreamID   string               `json:"stream_id,omitempty"`
	Source     *ProcessStreamSource `json:"source,omitempty"`
	Data       *string              `json:"data,omitempty"`
	ExitStatus *int                 `json:"exit_status,omitempty"`
	Error      *string              `json:"error,omitempty"`
	TTY        *TTYSpec             `json:"tty,omitempty"`
	Signal     *Signal              `json:"signal,omitempty"`
}

type stopRequest struct {
	Kill bool `json:"kill"`
}

type netInMessage struct {
	Handle        string `json:"handle,omitempty"`
	HostPort      uint32 `json:"host_port,omitempty"`
	ContainerPort uint32 `json:"container_port,omitempty"`
}

type propertyMessage struct {
	Value string `json:"value"`
}

// errProcessStream is the Wait error when the control connection ended
// without a terminal message.
var errProcessStream = errors.New("connection: process stream ended without an exit status")

func itoa(n int) string { return strconv.Itoa(n) }
