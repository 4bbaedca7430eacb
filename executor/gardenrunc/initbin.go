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

// Every container's pid 1 is garden-init: it sets SIGCHLD to "ignore" with
// SA_NOCLDWAIT, so the kernel reaps every orphan that lands on it, and then
// sleeps in pause(2) forever. The container therefore outlives its user
// processes, and zombies never pile up.
//
// The program is a few machine instructions, so it is assembled here into
// a static ELF executable instead of being compiled: the gavel binary is
// usually dynamically linked and could not run inside an arbitrary rootfs,
// and no C toolchain is needed at run time. Only amd64 is encoded; other
// architectures take Config.InitBinary.

// initCodeAMD64 is the program text, loaded at initBase+initHeaderSize.
// The sigaction struct (kernel layout: handler, flags, restorer, mask)
// follows at offset initActOffset.
var initCodeAMD64 = []byte{
	0xb8, 0x0d, 0x00, 0x00, 0x00, // mov eax, 13 (rt_sigaction)
	0xbf, 0x11, 0x00, 0x00, 0x00, // mov edi, 17 (SIGCHLD)
	0x48, 0x8d, 0x35, 0x17, 0x00, 0x00, 0x00, // lea rsi, [rip+23] -> act
	0x31, 0xd2, // xor edx, edx (no old action)
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, // mov r10d, 8 (sigset size)
	0x0f, 0x05, // syscall
	0xb8, 0x22, 0x00, 0x00, 0x00, // loop: mov eax, 34 (pause)
	0x0f, 0x05, // syscall
	0xeb, 0xf7, // jmp loop
	0x00, 0x00, 0x00, 0x00, // pad act to 8 bytes
}

const (
	initBase       = 0x400000
	initHeaderSize = 64 + 56 // ELF header + one program header
	initActOffset  = 40      // within the code: 17 (end of lea) + 23
	sigIgn         = 1
	saNoCldWait    = 2
)

// initELF returns the garden-init executable for this architecture.
func initELF() ([]byte, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("no built-in garden-init for %s: set the init binary", runtime.GOARCH)
	}
	code := append([]byte(nil), initCodeAMD64...)
	if len(code) != initActOffset {
		return nil, fmt.Errorf("garden-init code is %d bytes, want %d", len(code), initActOffset)
	}
	for _, v := range []uint64{sigIgn, saNoCldWait, 0, 0} {
		code = binary.LittleEndian.AppendUint64(code, v)
	}
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
		Phnum:     1,
	}
	prog := elf.Prog64{
		Type:   uint32(elf.PT_LOAD),
		Flags:  uint32(elf.PF_R | elf.PF_X),
		Vaddr:  initBase,
		Paddr:  initBase,
		Filesz: size,
		Memsz:  size,
		Align:  0x1000,
	}
	if err := binary.Write(&buf, le, hdr); err != nil {
		return nil, err
	}
	if err := binary.Write(&buf, le, prog); err != nil {
		return nil, err
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
