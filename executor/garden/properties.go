package garden

// MatchProperties reports whether props holds every key of filter with the
// same value (List's AND semantics). An empty filter matches everything.
func MatchProperties(props, filter Properties) bool {
	for k, want := range filter {
		if got, ok := props[k]; !ok || got != want {
			return false
		}
	}
	return true
}
