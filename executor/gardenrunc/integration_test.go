package gardenrunc

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gavel-scheduler/gavel/executor/garden"
)

func TestCreateRunEcho(t *testing.T) {
	requireHost(t)
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ctx := context.Background()
			s := startServer(t, network)
			c, err := s.client.Create(ctx, garden.ContainerSpec{Handle: "echo-" + network})
			if err != nil {
				t.Fatal(err)
			}
			defer s.client.Destroy(ctx, c.Handle())
			var stdout, stderr bytes.Buffer
			p, err := c.Run(ctx, garden.ProcessSpec{Path: "sh", Args: []string{"-c", "echo hello; echo oops >&2; exit 3"}}, garden.ProcessIO{Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatal(err)
			}
			code, err := p.Wait()
			if err != nil || code != 3 {
				t.Fatalf("exit = %d, %v (stderr %q)", code, err, stderr.String())
			}
			if stdout.String() != "hello\n" || stderr.String() != "oops\n" {
				t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
			}
			var out bytes.Buffer
			p, err = c.Run(ctx, garden.ProcessSpec{Path: "sh", Args: []string{"-c", "cat /proc/1/comm; hostname; ip -4 addr show eth0 | grep inet"}}, garden.ProcessIO{Stdout: &out, Stderr: &out})
			if err != nil {
				t.Fatal(err)
			}
			if code, _ := p.Wait(); code != 0 {
				t.Fatalf("exit %d: %s", code, out.String())
			}
			info, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 3 || lines[0] != "garden-init" || lines[1] != c.Handle() || !strings.Contains(lines[2], info.ContainerIP+"/") {
				t.Fatalf("inside the container: %q (info %+v)", lines, info)
			}
		})
	}
}
