package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The test binary is a subreaper: a `gavel garden` the tests stop or kill
// leaves its containers' processes (inits and the processes run in them)
// running, and they are reparented here, not to the machine's pid 1
// (which may never reap). Such a process cannot finish exiting (a
// container's init waits for every process of its namespace to be reaped)
// until this process reaps it, so the tests reap exactly the descendants
// of the processes they stop: never a child some library waits for.
func init() {
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// descendants lists every process below pid (children, their children...).
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		child, _ := strconv.Atoi(strings.Fields(s)[0])
		parent, _ := strconv.Atoi(f[1])
		children[parent] = append(children[parent], child)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// reapLater waits for each of pids in the background, once it has been
// reparented here; pids that are not (or no longer) children are skipped.
func reapLater(pids []int) {
	for _, pid := range pids {
		go func() {
			var ws syscall.WaitStatus
			for {
				_, err := syscall.Wait4(pid, &ws, 0, nil)
				if !errors.Is(err, syscall.EINTR) {
					return
				}
			}
		}()
	}
}
