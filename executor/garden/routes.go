package garden

import "strings"

// Route patterns (net/http ServeMux syntax) of the Garden protocol, keyed by
// the upstream route names. Path parameters travel unescaped, so handles,
// property names and process IDs must not contain "/", "?", "#" or "%".
const (
	routePing                   = "GET /ping"
	routeCapacity               = "GET /capacity"
	routeList                   = "GET /containers"
	routeCreate                 = "POST /containers"
	routeInfo                   = "GET /containers/{handle}/info"
	routeBulkInfo               = "GET /containers/bulk_info"
	routeBulkMetrics            = "GET /containers/bulk_metrics"
	routeDestroy                = "DELETE /containers/{handle}"
	routeStop                   = "PUT /containers/{handle}/stop"
	routeStreamIn               = "PUT /containers/{handle}/files"
	routeStreamOut              = "GET /containers/{handle}/files"
	routeCurrentBandwidthLimits = "GET /containers/{handle}/limits/bandwidth"
	routeCurrentCPULimits       = "GET /containers/{handle}/limits/cpu"
	routeCurrentDiskLimits      = "GET /containers/{handle}/limits/disk"
	routeCurrentMemoryLimits    = "GET /containers/{handle}/limits/memory"
	routeNetIn                  = "POST /containers/{handle}/net/in"
	routeNetOut                 = "POST /containers/{handle}/net/out"
	routeBulkNetOut             = "POST /containers/{handle}/net/out/bulk"
	routeStdout                 = "GET /containers/{handle}/processes/{pid}/attaches/{streamid}/stdout"
	routeStderr                 = "GET /containers/{handle}/processes/{pid}/attaches/{streamid}/stderr"
	routeRun                    = "POST /containers/{handle}/processes"
	routeAttach                 = "GET /containers/{handle}/processes/{pid}"
	routeSetGraceTime           = "PUT /containers/{handle}/grace_time"
	routeProperties             = "GET /containers/{handle}/properties"
	routeProperty               = "GET /containers/{handle}/properties/{key}"
	routeSetProperty            = "PUT /containers/{handle}/properties/{key}"
	routeRemoveProperty         = "DELETE /containers/{handle}/properties/{key}"
	routeMetrics                = "GET /containers/{handle}/metrics"
)

// routeMethodPath splits a route into its method and a path with params
// substituted in order.
func routeMethodPath(route string, params ...string) (method, path string) {
	method, pattern, _ := strings.Cut(route, " ")
	var b strings.Builder
	for len(pattern) > 0 {
		i := strings.IndexByte(pattern, '{')
		if i < 0 {
			b.WriteString(pattern)
			break
		}
		b.WriteString(pattern[:i])
		j := strings.IndexByte(pattern[i:], '}')
		pattern = pattern[i+j+1:]
		if len(params) > 0 {
			b.WriteString(params[0])
			params = params[1:]
		}
	}
	return method, b.String()
}
