package routeemitter

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Router names: the keys of DesiredLRP.routes this package reads. Other
// keys (internal-router, anything a deployment adds) are left alone.
const (
	CFRouter  = "cf-router"
	TCPRouter = "tcp-router"
)

// HTTPRoute is one hostname (optionally narrowed to a path prefix) that
// sends traffic to a container port.
type HTTPRoute struct {
	// Hostname is lower case; it may start with "*." for a wildcard.
	Hostname string
	// Path is a prefix such as "/api" (no trailing slash), or empty for
	// every path.
	Path string
}

// String renders the route as cf-router writes it: host[/path].
func (r HTTPRoute) String() string { return r.Hostname + r.Path }

// TCPRoute is an external port of a router group that forwards to a
// container port.
type TCPRoute struct {
	RouterGroupGUID string
	ExternalPort    uint32
}

// ClusterOptions are the upstream settings a cf-router entry may carry for
// its container port.
type ClusterOptions struct {
	// HTTP2 speaks HTTP/2 to the instances (cf-router protocol "http2").
	HTTP2 bool
	// LeastRequest balances to the least busy instance instead of round
	// robin (cf-router options.loadbalancing "least-connection").
	LeastRequest bool
}

// PortRoutes are the routes of one container port.
type PortRoutes struct {
	HTTP    []HTTPRoute // sorted, no duplicates
	TCP     []TCPRoute  // sorted, no duplicates
	Options ClusterOptions
}

// Empty reports whether the port has no route at all.
func (p PortRoutes) Empty() bool { return len(p.HTTP) == 0 && len(p.TCP) == 0 }

// Equal compares two route sets.
func (p PortRoutes) Equal(o PortRoutes) bool {
	return p.Options == o.Options && slices.Equal(p.HTTP, o.HTTP) && slices.Equal(p.TCP, o.TCP)
}

// RouteError names one bad field of a DesiredLRP's routes, by its path
// (e.g. routes.cf-router[0].hostnames[2]). A bad entry costs only itself:
// the LRP's other routes, and every other LRP's, are still served.
type RouteError struct {
	Field  string
	Reason string
}

func (e RouteError) Error() string { return "invalid route " + e.Field + ": " + e.Reason }

// ParseRoutes reads the cf-router and tcp-router entries of a DesiredLRP's
// routes map into routes per container port. Every problem is returned as
// a RouteError and the offending item (an entry, or a single hostname) is
// skipped; everything valid is kept.
func ParseRoutes(routes map[string]*structpb.Value) (map[uint32]PortRoutes, []RouteError) {
	p := routeParser{byPort: map[uint32]*portBuilder{}}
	if v, ok := routes[CFRouter]; ok {
		p.cfRouter("routes."+CFRouter, v)
	}
	if v, ok := routes[TCPRouter]; ok {
		p.tcpRouter("routes."+TCPRouter, v)
	}
	out := make(map[uint32]PortRoutes, len(p.byPort))
	for port, b := range p.byPort {
		pr := b.build()
		if !pr.Empty() {
			out[port] = pr
		}
	}
	return out, p.errs
}

type portBuilder struct {
	http     map[HTTPRoute]struct{}
	tcp      map[TCPRoute]struct{}
	options  ClusterOptions
	optsFrom string // field that set options, to name in a conflict
}

func (b *portBuilder) build() PortRoutes {
	var pr PortRoutes
	for r := range b.http {
		pr.HTTP = append(pr.HTTP, r)
	}
	for r := range b.tcp {
		pr.TCP = append(pr.TCP, r)
	}
	slices.SortFunc(pr.HTTP, func(a, b HTTPRoute) int {
		if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	slices.SortFunc(pr.TCP, func(a, b TCPRoute) int {
		if a.ExternalPort != b.ExternalPort {
			return int(a.ExternalPort) - int(b.ExternalPort)
		}
		return strings.Compare(a.RouterGroupGUID, b.RouterGroupGUID)
	})
	if len(pr.HTTP) > 0 {
		pr.Options = b.options
	}
	return pr
}

type routeParser struct {
	byPort map[uint32]*portBuilder
	errs   []RouteError
}

func (p *routeParser) bad(field, format string, args ...any) {
	p.errs = append(p.errs, RouteError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (p *routeParser) port(n uint32) *portBuilder {
	b, ok := p.byPort[n]
	if !ok {
		b = &portBuilder{http: map[HTTPRoute]struct{}{}, tcp: map[TCPRoute]struct{}{}}
		p.byPort[n] = b
	}
	return b
}

// list returns the entries of a router's value, which must be a JSON list
// of objects; an entry that is not an object is reported (in its turn, so
// problems come out in entry order) and comes back as nil.
func (p *routeParser) list(field string, v *structpb.Value, each func(at string, entry *structpb.Struct)) {
	l, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok {
		p.bad(field, "must be a JSON list of route objects, got %s", models.JSONKind(v))
		return
	}
	for i, item := range l.ListValue.GetValues() {
		at := fmt.Sprintf("%s[%d]", field, i)
		s, ok := item.GetKind().(*structpb.Value_StructValue)
		if !ok {
			p.bad(at, "must be a JSON object, got %s", models.JSONKind(item))
			continue
		}
		each(at, s.StructValue)
	}
}

func (p *routeParser) cfRouter(field string, v *structpb.Value) {
	p.list(field, v, func(at string, entry *structpb.Struct) {
		port, ok := p.portField(at+".port", entry.GetFields()["port"])
		if !ok {
			return
		}
		opts, optsOK := p.clusterOptions(at, entry.GetFields())
		hostsVal, has := entry.GetFields()["hostnames"]
		if !has {
			p.bad(at+".hostnames", "required: a list of hostnames")
			return
		}
		hosts, ok := hostsVal.GetKind().(*structpb.Value_ListValue)
		if !ok {
			p.bad(at+".hostnames", "must be a list of hostnames, got %s", models.JSONKind(hostsVal))
			return
		}
		var routes []HTTPRoute
		for j, h := range hosts.ListValue.GetValues() {
			hf := fmt.Sprintf("%s.hostnames[%d]", at, j)
			s, ok := h.GetKind().(*structpb.Value_StringValue)
			if !ok {
				p.bad(hf, "must be a string, got %s", models.JSONKind(h))
				continue
			}
			r, err := parseHTTPRoute(s.StringValue)
			if err != nil {
				p.bad(hf, "%q: %v", s.StringValue, err)
				continue
			}
			routes = append(routes, r)
		}
		if len(routes) == 0 {
			return
		}
		b := p.port(port)
		for _, r := range routes {
			b.http[r] = struct{}{}
		}
		if !optsOK {
			return
		}
		switch {
		case b.optsFrom == "":
			b.options, b.optsFrom = opts, at
		case b.options != opts:
			p.bad(at, "protocol and options conflict with %s for container port %d; keeping those", b.optsFrom, port)
		}
	})
}

// clusterOptions reads protocol and options.loadbalancing; ok is false
// when either is malformed (the entry's routes still count).
func (p *routeParser) clusterOptions(at string, fields map[string]*structpb.Value) (ClusterOptions, bool) {
	var o ClusterOptions
	ok := true
	if v, has := fields["protocol"]; has {
		switch s := v.GetStringValue(); {
		case !isString(v):
			p.bad(at+".protocol", "must be a string, got %s", models.JSONKind(v))
			ok = false
		case s == "" || s == "http1":
		case s == "http2":
			o.HTTP2 = true
		default:
			p.bad(at+".protocol", "%q: must be http1 or http2", s)
			ok = false
		}
	}
	if v, has := fields["options"]; has {
		opts, isStruct := v.GetKind().(*structpb.Value_StructValue)
		if !isStruct {
			p.bad(at+".options", "must be a JSON object, got %s", models.JSONKind(v))
			return o, false
		}
		if lb, has := opts.StructValue.GetFields()["loadbalancing"]; has {
			switch s := lb.GetStringValue(); {
			case !isString(lb):
				p.bad(at+".options.loadbalancing", "must be a string, got %s", models.JSONKind(lb))
				ok = false
			case s == "" || s == "round-robin":
			case s == "least-connection":
				o.LeastRequest = true
			default:
				p.bad(at+".options.loadbalancing", "%q: must be round-robin or least-connection", s)
				ok = false
			}
		}
	}
	return o, ok
}

func (p *routeParser) tcpRouter(field string, v *structpb.Value) {
	p.list(field, v, func(at string, entry *structpb.Struct) {
		f := entry.GetFields()
		external, ok1 := p.portField(at+".external_port", f["external_port"])
		container, ok2 := p.portField(at+".container_port", f["container_port"])
		group := ""
		if g, has := f["router_group_guid"]; has {
			if !isString(g) {
				p.bad(at+".router_group_guid", "must be a string, got %s", models.JSONKind(g))
				return
			}
			group = g.GetStringValue()
		}
		if !ok1 || !ok2 {
			return
		}
		p.port(container).tcp[TCPRoute{RouterGroupGUID: group, ExternalPort: external}] = struct{}{}
	})
}

// portField reads a port number (1..65535).
func (p *routeParser) portField(field string, v *structpb.Value) (uint32, bool) {
	if v == nil {
		p.bad(field, "required: a port number")
		return 0, false
	}
	n, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok {
		p.bad(field, "must be a number, got %s", models.JSONKind(v))
		return 0, false
	}
	f := n.NumberValue
	if f != math.Trunc(f) || f < 1 || f > 65535 {
		p.bad(field, "%s is not a port (1-65535)", strconv.FormatFloat(f, 'g', -1, 64))
		return 0, false
	}
	return uint32(f), true
}

func isString(v *structpb.Value) bool {
	_, ok := v.GetKind().(*structpb.Value_StringValue)
	return ok
}

// parseHTTPRoute splits "host[/path]" and checks both halves. Hostnames are
// DNS names (letters, digits, hyphens; labels of at most 63 characters, 253
// in all), optionally with a leading "*." wildcard; they are folded to
// lower case because Host matching is case-insensitive. A path is a prefix
// of plain URL path characters; a trailing slash is dropped so that "/a"
// and "/a/" name the same route.
func parseHTTPRoute(s string) (HTTPRoute, error) {
	host, path, hasPath := strings.Cut(s, "/")
	host = strings.ToLower(host)
	if err := checkHostname(host); err != nil {
		return HTTPRoute{}, err
	}
	r := HTTPRoute{Hostname: host}
	if hasPath {
		path = strings.TrimRight("/"+path, "/")
		for _, c := range path {
			if !pathChar(c) {
				return HTTPRoute{}, fmt.Errorf("path %q: character %q is not allowed", path, c)
			}
		}
		if strings.Contains(path, "//") {
			return HTTPRoute{}, fmt.Errorf("path %q: empty segment", path)
		}
		r.Path = path
	}
	return r, nil
}

func checkHostname(host string) error {
	if host == "" {
		return fmt.Errorf("empty hostname")
	}
	if len(host) > 253 {
		return fmt.Errorf("hostname is %d characters, at most 253", len(host))
	}
	labels := strings.Split(host, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 1 {
			continue
		}
		if l == "" {
			return fmt.Errorf("empty label")
		}
		if len(l) > 63 {
			return fmt.Errorf("label %q is longer than 63 characters", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not allowed in a hostname", c)
			}
		}
	}
	return nil
}

// pathChar allows RFC 3986 path characters except those Envoy's prefix
// matching treats specially or that would end a path (?, #).
func pathChar(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.ContainsRune("/-._~!$&'()*+,;=:@%", c)
}
