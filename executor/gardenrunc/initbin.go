package gardenrunc

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Every container's pid 1 is garden-init. It reaps: SIGCHLD is "ignore"
// with SA_NOCLDWAIT, so the kernel reaps every orphan that lands on it and
// zombies never pile up. And it spawns: the container's processes are
// forked by it on request over a socket only the host can reach (spawn.go
// is the server's side), which spares a `runc exec` per process. It never
// exits, so the container outlives its processes.
//
// It is written in assembly (initsrc/garden-init-amd64.S, assembled into
// initcode.go by `make init`) and wrapped here into a static ELF
// executable: the gavel binary is usually dynamically linked and could not
// run inside an arbitrary rootfs, a Go init would cost every container
// megabytes of its memory limit, and no toolchain is needed at run time.
// Only amd64 is encoded; other architectures take Config.InitBinary, which
// must speak the same protocol.

const (
	initBase       = 0x400000
	initHeaderSize = 64 + 3*56 // ELF header + three program headers
	// The data segment: zero-filled memory at a fixed address, which the
	// spawn protocol's programs point into (spawnData* in spawn.go).
	initDataBase = spawnDataBase
	initDataSize = spawnProgOffset + spawnProgMax
)

// initELF returns the garden-init executable for this architecture.
func initELF() ([]byte, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("no built-in garden-init for %s: set the init binary", runtime.GOARCH)
	}
	code := initCodeAMD64
	size := uint64(initHeaderSize + len(code))
	var buf bytes.Buffer
	le := binary.LittleEndian
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	hdr := elf.Header64{
		Ident:     ident,
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     initBase + initHeaderSize,
		Phoff:     64,
		Ehsize:    64,
		Phentsize: 56,
		Phnum:     3,
	}
	progs := []elf.Prog64{{
		Type:   uint32(elf.PT_LOAD),
		Flags:  uint32(elf.PF_R | elf.PF_X),
		Vaddr:  initBase,
		Paddr:  initBase,
		Filesz: size,
		Memsz:  size,
		Align:  0x1000,
	}, {
		// bss only: nothing in the file, pages appear as they are touched.
		Type:  uint32(elf.PT_LOAD),
		Flags: uint32(elf.PF_R | elf.PF_W),
		Vaddr: initDataBase,
		Paddr: initDataBase,
		Memsz: initDataSize,
		Align: 0x1000,
	}, {
		// A non-executable stack.
		Type:  uint32(elf.PT_GNU_STACK),
		Flags: uint32(elf.PF_R | elf.PF_W),
		Align: 16,
	}}
	if err := binary.Write(&buf, le, hdr); err != nil {
		return nil, err
	}
	for _, p := range progs {
		if err := binary.Write(&buf, le, p); err != nil {
			return nil, err
		}
	}
	buf.Write(code)
	return buf.Bytes(), nil
}

// installInit writes the init executable (or copies configured) to
// dir/garden-init and returns its path.
func installInit(dir, configured string) (string, error) {
	var (
		data []byte
		err  error
	)
	if configured != "" {
		data, err = os.ReadFile(configured)
	} else {
		data, err = initELF()
	}
	if err != nil {
		return "", fmt.Errorf("garden-init: %w", err)
	}
	path := filepath.Join(dir, "garden-init")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
