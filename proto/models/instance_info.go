package models

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"
)

// InternalRouter is the routes key read for an instance's internal routes
// (container-to-container service discovery): a JSON list of
// {"hostname": "..."} objects.
const InternalRouter = "internal-router"

// InternalRoutes reads the internal-router entry of a routes map into the
// routes every instance of the LRP carries. A missing or null entry means
// none. A bad entry costs only itself: it is skipped and named in the error,
// and the good ones are still returned, so the rep, the BBS and the
// converger, all reading the same map with this function, agree on the
// result however malformed it is.
func InternalRoutes(routes map[string]*structpb.Value) ([]*ActualLRPInternalRoute, error) {
	v, ok := routes[InternalRouter]
	if !ok || v == nil {
		return nil, nil
	}
	path := "routes." + InternalRouter
	var list *structpb.ListValue
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return nil, nil
	case *structpb.Value_ListValue:
		list = k.ListValue
	default:
		return nil, fmt.Errorf("%s: must be a JSON list of {\"hostname\": ...} objects, got %s", path, JSONKind(v))
	}
	var out []*ActualLRPInternalRoute
	var errs []error
	for i, item := range list.GetValues() {
		at := fmt.Sprintf("%s[%d]", path, i)
		obj, ok := item.GetKind().(*structpb.Value_StructValue)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: must be a JSON object, got %s", at, JSONKind(item)))
			continue
		}
		h, ok := obj.StructValue.GetFields()["hostname"]
		if !ok {
			errs = append(errs, fmt.Errorf("%s.hostname: required", at))
			continue
		}
		s, ok := h.GetKind().(*structpb.Value_StringValue)
		if !ok || s.StringValue == "" {
			errs = append(errs, fmt.Errorf("%s.hostname: must be a non-empty string, got %s", at, JSONKind(h)))
			continue
		}
		out = append(out, &ActualLRPInternalRoute{Hostname: s.StringValue})
	}
	return out, errors.Join(errs...)
}

// JSONKind names a JSON value's kind for an error message ("a number",
// "an object"...): route decoders here and in the route emitter use it.
func JSONKind(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return "null"
	case *structpb.Value_NumberValue:
		return "a number"
	case *structpb.Value_StringValue:
		return "a string"
	case *structpb.Value_BoolValue:
		return "a boolean"
	case *structpb.Value_StructValue:
		return "an object"
	case *structpb.Value_ListValue:
		return "a list"
	}
	return "nothing"
}

// ResolveMetricTags gives one instance's metric tags: a static value as is,
// a dynamic INDEX as the index in decimal, a dynamic INSTANCE_GUID as the
// instance guid. A tag with neither (refused by validation, but possible in
// an old record) is left out. No tags resolve to nil.
func ResolveMetricTags(tags map[string]*MetricTagValue, index int32, instanceGuid string) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	out := make(map[string]string, len(tags))
	for k, t := range tags {
		switch {
		case t.GetStatic() != "":
			out[k] = t.GetStatic()
		case t.GetDynamic() == MetricTagValue_INDEX:
			out[k] = strconv.Itoa(int(index))
		case t.GetDynamic() == MetricTagValue_INSTANCE_GUID:
			out[k] = instanceGuid
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// InternalRoutes is what every instance of d carries (see InternalRoutes).
func (d *DesiredLRP) InternalRoutes() ([]*ActualLRPInternalRoute, error) {
	return InternalRoutes(d.GetRoutes())
}

// InstanceMetricTags is what the instance of d at index, named
// instanceGuid, carries.
func (d *DesiredLRP) InstanceMetricTags(index int32, instanceGuid string) map[string]string {
	return ResolveMetricTags(d.GetMetricTags(), index, instanceGuid)
}

// InternalRoutes is what every instance of s carries (see InternalRoutes).
// The scheduling info holds the routes and the metric tags, so the
// converger checks instances against it without reading run infos.
func (s *DesiredLRPSchedulingInfo) InternalRoutes() ([]*ActualLRPInternalRoute, error) {
	return InternalRoutes(s.GetRoutes())
}

// InstanceMetricTags is what the instance of s at index, named
// instanceGuid, carries.
func (s *DesiredLRPSchedulingInfo) InstanceMetricTags(index int32, instanceGuid string) map[string]string {
	return ResolveMetricTags(s.GetMetricTags(), index, instanceGuid)
}

// EqualInternalRoutes compares two route lists by hostname, in order (both
// sides come from InternalRoutes of one map, which keeps the map's order).
// Nil and empty are equal.
func EqualInternalRoutes(a, b []*ActualLRPInternalRoute) bool {
	return slices.EqualFunc(a, b, func(x, y *ActualLRPInternalRoute) bool { return x.GetHostname() == y.GetHostname() })
}

// EqualMetricTags compares two resolved tag maps; nil and empty are equal.
func EqualMetricTags(a, b map[string]string) bool { return maps.Equal(a, b) }

// InstanceInfoChanged reports whether an update from before to after
// changes what instances carry: their internal routes or their metric tags
// (the unresolved declarations; any change there can change an instance's
// resolved tags).
func InstanceInfoChanged(before, after *DesiredLRPSchedulingInfo) bool {
	br, _ := before.InternalRoutes()
	ar, _ := after.InternalRoutes()
	if !EqualInternalRoutes(br, ar) {
		return true
	}
	return !maps.EqualFunc(before.GetMetricTags(), after.GetMetricTags(), equalMessages[*MetricTagValue])
}

// Drift says which of an instance's stored internal routes and metric
// tags differ from what its desired LRP gives (diego-facts §6.1 rules 13
// and 14).
type Drift struct {
	InternalRoutes bool
	MetricTags     bool
}

// Any reports whether anything drifted.
func (d Drift) Any() bool { return d.InternalRoutes || d.MetricTags }

// InstanceDrift compares a row's stored internal routes and metric tags
// with what its desired LRP gives it: the desired LRP's InternalRoutes
// (the same for every instance, so a caller checking many rows reads them
// once) and its metric tags resolved for the row's index and instance guid.
func InstanceDrift(a *ActualLRP, routes []*ActualLRPInternalRoute, tags map[string]*MetricTagValue) Drift {
	return Drift{
		InternalRoutes: !EqualInternalRoutes(a.GetActualLrpInternalRoutes(), routes),
		MetricTags:     !MetricTagsMatch(a.GetMetricTags(), tags, a.Index(), a.InstanceGuid()),
	}
}

// MetricTagsMatch reports whether stored equals
// ResolveMetricTags(tags, index, instanceGuid) without building that map:
// the converger checks every running instance on every pass.
func MetricTagsMatch(stored map[string]string, tags map[string]*MetricTagValue, index int32, instanceGuid string) bool {
	n := 0
	var idx string
	for k, t := range tags {
		var want string
		switch {
		case t.GetStatic() != "":
			want = t.GetStatic()
		case t.GetDynamic() == MetricTagValue_INDEX:
			if idx == "" {
				idx = strconv.Itoa(int(index))
			}
			want = idx
		case t.GetDynamic() == MetricTagValue_INSTANCE_GUID:
			want = instanceGuid
		default:
			continue
		}
		n++
		if got, ok := stored[k]; !ok || got != want {
			return false
		}
	}
	return n == len(stored)
}
