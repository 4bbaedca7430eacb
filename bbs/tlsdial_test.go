package bbs

import (
	"crypto/tls"
	"net"
	"time"
)

func tlsDial(addr string, tc *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tc = tc.Clone()
	tc.NextProtos = []string{"h2"}
	return tls.DialWithDialer(d, "tcp", addr, tc)
}
