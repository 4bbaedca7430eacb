package bbs

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

func mustMarshal(tb testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
