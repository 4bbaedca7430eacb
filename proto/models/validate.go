package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Limits enforced by Validate. They are exported so that clients (the CLI,
// the route emitter) can check or explain them without duplicating numbers.
const (
	// MaxGuidLength bounds process, task and instance guids: they end up in
	// etcd keys, container handles and log tags.
	MaxGuidLength = 255
	// MaxDomainLength bounds domain names for the same reason.
	MaxDomainLength = 255
	// MaxCellIDLength bounds cell ids, which also end up in etcd keys.
	MaxCellIDLength = 255
	// MaxInstances is the largest instance count a DesiredLRP may ask for.
	MaxInstances = 100000
	// MaxCPUWeight is the top of the relative CPU share scale.
	MaxCPUWeight = 100
	// MaxPorts is how many container ports one LRP may expose.
	MaxPorts = 100
	// MaxRoutesSize is the total JSON size of a routes map (keys plus
	// values); the route emitter fans routes out to every router, so they
	// are kept small.
	MaxRoutesSize = 128 * 1024
	// MaxAnnotationLength bounds the opaque annotation on LRPs and tasks.
	MaxAnnotationLength = 10 * 1024
	// MaxRecordSize bounds the encoded size of a whole DesiredLRP or
	// TaskDefinition, so a single record cannot crowd an etcd transaction.
	MaxRecordSize = 1024 * 1024
	// MaxActionDepth bounds how deeply actions nest; the executor walks
	// action trees recursively.
	MaxActionDepth = 32
	// MaxCellPresenceTTLSeconds is the longest lease a cell may ask for;
	// a longer lease would hide a dead cell from convergence for too long.
	MaxCellPresenceTTLSeconds = 3600
)

// validator collects every problem found in one record. Validation never
// stops at the first problem: a client fixing a spec wants the whole list.
type validator struct {
	errs ValidationErrors
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// err returns the collected problems, or an untyped nil so that callers can
// compare the result with nil.
func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

// field joins a parent path and a field name: "" + "a" = "a",
// "a" + "b" = "a.b".
func field(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// elem names element i of a repeated field.
func elem(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// entry names the value under key in a map field.
func entry(path, key string) string { return fmt.Sprintf("%s[%q]", path, key) }

// --- scalar rules -----------------------------------------------------------

func (v *validator) notEmpty(path, s string) {
	if s == "" {
		v.add(path, "must not be empty")
	}
}

func (v *validator) maxBytes(path, s string, n int) {
	if len(s) > n {
		v.add(path, "must be at most %d bytes, got %d", n, len(s))
	}
}

func (v *validator) nonNegative(path string, n int64) {
	if n < 0 {
		v.add(path, "must not be negative, got %d", n)
	}
}

func (v *validator) between(path string, n, lo, hi int64) {
	if n < lo || n > hi {
		v.add(path, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (v *validator) port(path string, p uint32) {
	if p < 1 || p > 65535 {
		v.add(path, "must be between 1 and 65535, got %d", p)
	}
}

// guid checks a process, task or instance guid.
func (v *validator) guid(path, s string) {
	switch {
	case s == "":
		v.add(path, "must not be empty")
	case len(s) > MaxGuidLength:
		v.add(path, "must be at most %d bytes, got %d", MaxGuidLength, len(s))
	case !allBytes(s, isGuidByte):
		v.add(path, "must match [a-zA-Z0-9_-]+")
	}
}

// domain checks a domain name. Domains become etcd key segments, hence no
// '/' and no whitespace.
func (v *validator) domain(path, s string) {
	switch {
	case s == "":
		v.add(path, "must not be empty")
	case len(s) > MaxDomainLength:
		v.add(path, "must be at most %d bytes, got %d", MaxDomainLength, len(s))
	case strings.Contains(s, "/"):
		v.add(path, "must not contain '/'")
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		v.add(path, "must not contain whitespace")
	}
}

// cellID checks a cell id; unlike guids it may contain dots, because cell
// ids are often host names.
func (v *validator) cellID(path, s string) {
	switch {
	case s == "":
		v.add(path, "must not be empty")
	case len(s) > MaxCellIDLength:
		v.add(path, "must be at most %d bytes, got %d", MaxCellIDLength, len(s))
	case !allBytes(s, isCellIDByte):
		v.add(path, "must match [a-zA-Z0-9_.-]+")
	}
}

func isGuidByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func isCellIDByte(c byte) bool { return isGuidByte(c) || c == '.' }

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// rootfs checks a rootfs URL: the scheme picks the provider (preloaded:,
// docker:, ...), so a URL without one cannot be placed.
func (v *validator) rootfs(path, s string) {
	if s == "" {
		v.add(path, "must not be empty")
		return
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		v.add(path, "must be a URL with a scheme, e.g. preloaded:cflinuxfs4 or docker:///image")
	}
}

// httpURL checks an absolute http or https URL.
func (v *validator) httpURL(path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(path, "must be an absolute http or https URL")
	}
}

func (v *validator) absPath(path, s string) {
	if !strings.HasPrefix(s, "/") {
		v.add(path, "must be an absolute path")
	}
}

func (v *validator) annotation(path, s string) { v.maxBytes(path, s, MaxAnnotationLength) }

// --- shared field rules -----------------------------------------------------

func (v *validator) instances(path string, n int32) {
	v.between(path, int64(n), 0, MaxInstances)
}

func (v *validator) cpuWeight(path string, w uint32) {
	if w > MaxCPUWeight {
		v.add(path, "must be at most %d, got %d", MaxCPUWeight, w)
	}
}

// ports checks the container ports an LRP exposes.
func (v *validator) ports(path string, ports []uint32) {
	if len(ports) > MaxPorts {
		v.add(path, "must list at most %d ports, got %d", MaxPorts, len(ports))
	}
	seen := make(map[uint32]bool, len(ports))
	for i, p := range ports {
		v.port(elem(path, i), p)
		if seen[p] {
			v.add(elem(path, i), "duplicate port %d", p)
		}
		seen[p] = true
	}
}

// routes checks the total JSON size of a routes map.
func (v *validator) routes(path string, routes map[string]*structpb.Value) {
	size := 0
	for _, k := range sortedKeys(routes) {
		val := routes[k]
		if val == nil || val.GetKind() == nil {
			v.add(entry(path, k), "must be a JSON value")
			continue
		}
		b, err := compactProtoJSON(val)
		if err != nil {
			v.add(entry(path, k), "must be a JSON value: %v", err)
			continue
		}
		size += len(k) + len(b)
	}
	if size > MaxRoutesSize {
		v.add(path, "must be at most %d bytes of JSON, got %d", MaxRoutesSize, size)
	}
}

// compactProtoJSON marshals m with snake_case names and no insignificant
// whitespace. protojson deliberately varies its whitespace between builds;
// compacting makes sizes and bytes stable.
func compactProtoJSON(m proto.Message) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sortedKeys lists a map's keys in order, so that problems are reported
// in the same order on every run.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func (v *validator) env(path string, env []*EnvironmentVariable) {
	for i, e := range env {
		if e == nil {
			v.add(elem(path, i), "must be set")
			continue
		}
		v.notEmpty(field(elem(path, i), "name"), e.GetName())
	}
}

func (v *validator) placementTags(path string, tags []string) {
	for i, t := range tags {
		v.notEmpty(elem(path, i), t)
	}
}

// metricTags checks metric tag declarations: each value is either a static
// string or one of the per-instance dynamic values, never both.
func (v *validator) metricTags(path string, tags map[string]*MetricTagValue) {
	for _, k := range sortedKeys(tags) {
		p := entry(path, k)
		if k == "" {
			v.add(p, "key must not be empty")
		}
		t := tags[k]
		static, dynamic := t.GetStatic() != "", t.GetDynamic() != MetricTagValue_DYNAMIC_VALUE_INVALID
		switch {
		case static && dynamic:
			v.add(p, "must set only one of static or dynamic")
		case !static && !dynamic:
			v.add(p, "must set one of static or dynamic")
		case dynamic && t.GetDynamic() != MetricTagValue_INDEX && t.GetDynamic() != MetricTagValue_INSTANCE_GUID:
			v.add(field(p, "dynamic"), "must be INDEX or INSTANCE_GUID, got %d", int32(t.GetDynamic()))
		}
	}
}

var egressProtocols = map[string]bool{"tcp": true, "udp": true, "icmp": true, "all": true}

func (v *validator) egressRules(path string, rules []*SecurityGroupRule) {
	for i, r := range rules {
		p := elem(path, i)
		if r == nil {
			v.add(p, "must be set")
			continue
		}
		proto := r.GetProtocol()
		if !egressProtocols[proto] {
			v.add(field(p, "protocol"), "must be one of tcp, udp, icmp, all")
		}
		if len(r.GetDestinations()) == 0 {
			v.add(field(p, "destinations"), "must not be empty")
		}
		for j, d := range r.GetDestinations() {
			if !validDestination(d) {
				v.add(elem(field(p, "destinations"), j), "must be an IP address, a CIDR or an IP range a-b")
			}
		}
		// With an unknown protocol, only the protocol is reported: which
		// other fields fit depends on what was meant.
		known := egressProtocols[proto]
		portsAllowed := proto == "tcp" || proto == "udp"
		if len(r.GetPorts()) > 0 {
			if known && !portsAllowed {
				v.add(field(p, "ports"), "must only be set for tcp or udp")
			}
			for j, port := range r.GetPorts() {
				v.port(elem(field(p, "ports"), j), port)
			}
		}
		if pr := r.GetPortRange(); pr != nil {
			switch {
			case known && !portsAllowed:
				v.add(field(p, "port_range"), "must only be set for tcp or udp")
			case len(r.GetPorts()) > 0:
				v.add(field(p, "port_range"), "must not be set together with ports")
			}
			v.port(field(p, "port_range.start"), pr.GetStart())
			v.port(field(p, "port_range.end"), pr.GetEnd())
			if pr.GetStart() > pr.GetEnd() {
				v.add(field(p, "port_range"), "start must not be after end, got %d-%d", pr.GetStart(), pr.GetEnd())
			}
		}
		if known && r.GetIcmpInfo() != nil && proto != "icmp" {
			v.add(field(p, "icmp_info"), "must only be set for icmp")
		}
	}
}

// validDestination accepts an IP address, a CIDR, or an inclusive range
// "a-b" of addresses of one family.
func validDestination(d string) bool {
	if _, err := netip.ParseAddr(d); err == nil {
		return true
	}
	if _, err := netip.ParsePrefix(d); err == nil {
		return true
	}
	lo, hi, ok := strings.Cut(d, "-")
	if !ok {
		return false
	}
	a, err1 := netip.ParseAddr(lo)
	b, err2 := netip.ParseAddr(hi)
	return err1 == nil && err2 == nil && a.Is4() == b.Is4() && a.Compare(b) <= 0
}

var checksumAlgorithms = map[string]bool{"md5": true, "sha1": true, "sha256": true}

// checksum checks a checksum pair: the value is present exactly when the
// algorithm is, and the algorithm is one the executor can verify.
func (v *validator) checksum(path, algorithm, value string) {
	switch {
	case algorithm == "" && value != "":
		v.add(field(path, "checksum_algorithm"), "must be set when checksum_value is")
	case algorithm != "" && !checksumAlgorithms[algorithm]:
		v.add(field(path, "checksum_algorithm"), "must be one of md5, sha1, sha256")
	case algorithm != "" && value == "":
		v.add(field(path, "checksum_value"), "must be set when checksum_algorithm is")
	}
}

func (v *validator) cachedDependencies(path string, deps []*CachedDependency) {
	for i, d := range deps {
		p := elem(path, i)
		if d == nil {
			v.add(p, "must be set")
			continue
		}
		v.notEmpty(field(p, "from"), d.GetFrom())
		v.notEmpty(field(p, "to"), d.GetTo())
		v.checksum(p, d.GetChecksumAlgorithm(), d.GetChecksumValue())
	}
}

var digestAlgorithms = map[string]bool{"sha256": true, "sha512": true}

func (v *validator) imageLayers(path string, layers []*ImageLayer) {
	for i, l := range layers {
		p := elem(path, i)
		if l == nil {
			v.add(p, "must be set")
			continue
		}
		v.notEmpty(field(p, "url"), l.GetUrl())
		v.notEmpty(field(p, "destination_path"), l.GetDestinationPath())
		if t := l.GetLayerType(); t != ImageLayer_SHARED && t != ImageLayer_EXCLUSIVE {
			v.add(field(p, "layer_type"), "must be SHARED or EXCLUSIVE")
		}
		switch l.GetMediaType() {
		case ImageLayer_TGZ, ImageLayer_TAR, ImageLayer_ZIP:
		default:
			v.add(field(p, "media_type"), "must be TGZ, TAR or ZIP")
		}
		alg, val := l.GetDigestAlgorithm(), l.GetDigestValue()
		switch {
		case alg != "" && !digestAlgorithms[alg]:
			v.add(field(p, "digest_algorithm"), "must be sha256 or sha512")
		case alg == "" && l.GetLayerType() == ImageLayer_EXCLUSIVE:
			// An exclusive layer is cached by digest; without one the
			// executor cannot tell whether its cached copy is current.
			v.add(field(p, "digest_algorithm"), "must be set for EXCLUSIVE layers")
		case alg == "" && val != "":
			v.add(field(p, "digest_algorithm"), "must be set when digest_value is")
		}
		if alg != "" && val == "" {
			v.add(field(p, "digest_value"), "must be set when digest_algorithm is")
		}
	}
}

func (v *validator) volumeMounts(path string, mounts []*VolumeMount) {
	for i, m := range mounts {
		p := elem(path, i)
		if m == nil {
			v.add(p, "must be set")
			continue
		}
		v.notEmpty(field(p, "driver"), m.GetDriver())
		v.notEmpty(field(p, "container_dir"), m.GetContainerDir())
		if mode := m.GetMode(); mode != "r" && mode != "rw" {
			v.add(field(p, "mode"), `must be "r" or "rw"`)
		}
		if m.GetShared() == nil {
			v.add(field(p, "shared"), "must be set")
		} else {
			v.notEmpty(field(p, "shared.volume_id"), m.GetShared().GetVolumeId())
		}
	}
}

func (v *validator) files(path string, files []*File) {
	for i, f := range files {
		if f == nil {
			v.add(elem(path, i), "must be set")
			continue
		}
		v.notEmpty(field(elem(path, i), "path"), f.GetPath())
	}
}

// imageCredentials checks that registry credentials come as a pair.
func (v *validator) imageCredentials(parent, username, password string) {
	switch {
	case username != "" && password == "":
		v.add(field(parent, "image_password"), "must be set when image_username is")
	case username == "" && password != "":
		v.add(field(parent, "image_username"), "must be set when image_password is")
	}
}

func (v *validator) logRateLimit(path string, l *LogRateLimit) {
	if l != nil && l.GetBytesPerSecond() < -1 {
		v.add(field(path, "bytes_per_second"), "must be -1 (unlimited) or more, got %d", l.GetBytesPerSecond())
	}
}

func (v *validator) sidecars(path string, sidecars []*Sidecar) {
	for i, s := range sidecars {
		p := elem(path, i)
		if s == nil {
			v.add(p, "must be set")
			continue
		}
		v.requiredAction(field(p, "action"), s.GetAction())
		v.nonNegative(field(p, "memory_mb"), int64(s.GetMemoryMb()))
		v.nonNegative(field(p, "disk_mb"), int64(s.GetDiskMb()))
	}
}

func (v *validator) updateStrategy(path string, s UpdateStrategy) {
	if s != UpdateStrategy_ROLLING && s != UpdateStrategy_RECREATE {
		v.add(path, "must be ROLLING or RECREATE, got %d", int32(s))
	}
}
