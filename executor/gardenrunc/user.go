package gardenrunc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// execUser is a resolved process user.
type execUser struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32
	Home   string
}

// lookupUser resolves spec ("" root, "name", "uid:gid", "name:group")
// against the container's /etc/passwd and /etc/group, read inside root.
func lookupUser(root *os.Root, spec string) (execUser, error) {
	passwd, _ := root.ReadFile("etc/passwd")
	group, _ := root.ReadFile("etc/group")
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "root"
	}
	u := execUser{Name: userPart, Home: "/"}
	entry, found := findEntry(passwd, func(f []string) bool { return len(f) >= 7 && f[0] == userPart })
	if !found {
		if _, err := strconv.ParseUint(userPart, 10, 32); err == nil {
			entry, found = findEntry(passwd, func(f []string) bool { return len(f) >= 7 && f[2] == userPart })
			if !found {
				uid, _ := strconv.ParseUint(userPart, 10, 32)
				u.UID, u.GID = uint32(uid), uint32(uid)
			}
		} else if userPart == "root" {
			u.Home = "/root" // no passwd file (or no root entry): root still works
		} else {
			return u, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
		}
	}
	if found {
		uid, _ := strconv.ParseUint(entry[2], 10, 32)
		gid, _ := strconv.ParseUint(entry[3], 10, 32)
		u.UID, u.GID, u.Home, u.Name = uint32(uid), uint32(gid), entry[5], entry[0]
		if u.Home == "" {
			u.Home = "/"
		}
	}
	if hasGroup {
		if gid, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			u.GID = uint32(gid)
		} else if e, ok := findEntry(group, func(f []string) bool { return len(f) >= 3 && f[0] == groupPart }); ok {
			gid, _ := strconv.ParseUint(e[2], 10, 32)
			u.GID = uint32(gid)
		} else {
			return u, fmt.Errorf("unable to find group %s: no matching entries in group file", groupPart)
		}
	}
	// Supplementary groups: every group listing the user by name.
	sc := bufio.NewScanner(bytes.NewReader(group))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == u.Name {
				if gid, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(gid) != u.GID {
					u.Groups = append(u.Groups, uint32(gid))
				}
			}
		}
	}
	return u, nil
}

func findEntry(data []byte, match func([]string) bool) ([]string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Split(line, ":"); match(f) {
			return f, true
		}
	}
	return nil, false
}
