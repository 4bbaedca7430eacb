# garden-init for linux/amd64: pid 1 of every gavel container, and the
# spawner of the container's processes. `make init` assembles it into
# ../initcode_amd64.go; the ELF around it is written by initbin.go. The
# memory layout below is shared with spawn.go (the spawnData* constants).
#
# pid 1 sets SIGCHLD to "ignore" with SA_NOCLDWAIT (the kernel reaps every
# orphan that lands on it) and accepts connections on fd 3, a listening
# SOCK_SEQPACKET socket the garden server bound in the container's depot
# directory on the host, out of the container's sight. For each
# connection it forks a shim and goes back to accept.
#
# The shim receives one message: a program (a list of system calls) and
# the process's stdio descriptors. It vforks; the child runs the program,
# which sets the process up and ends in execve. The shim then reports
# "vfork returned" (kind 4), waits for the process and reports its wait
# status (kind 3). When a step fails, the child reports the step and the
# error (kind 2) and exits 127. Every report is three 64-bit words: kind,
# and two values.
#
# A program step is eight 64-bit words: the syscall number, flags, and six
# arguments. Flag bit i (0..5) makes argument i indirect: it is read as a
# 32-bit value at that address (how a step names a received descriptor,
# whose number only the shim learns). Flag bit 8 lets the step fail
# without ending the program (how PATH is searched). Number -1 ends it.

	.intel_syntax noprefix
	.text
	.globl _start

	.set DATA,     0x600000
	.set MSGHDR,   DATA            # struct msghdr, 56 bytes
	.set IOV,      DATA + 64       # struct iovec
	.set CTRL,     DATA + 128      # control buffer for SCM_RIGHTS
	.set CTRLLEN,  384
	.set CONNFD,   DATA + 512
	.set STATUS,   DATA + 520
	.set OUT,      DATA + 576      # a report: kind, a, b
	.set SIGACT,   DATA + 640      # struct kernel_sigaction
	.set DELAY,    DATA + 704      # struct timespec for accept retries
	.set PROG,     DATA + 4096
	.set PROGLEN,  1048576

	.set SYS_close, 3
	.set SYS_rt_sigaction, 13
	.set SYS_pause, 34
	.set SYS_nanosleep, 35
	.set SYS_sendto, 44
	.set SYS_recvmsg, 47
	.set SYS_fork, 57
	.set SYS_vfork, 58
	.set SYS_wait4, 61
	.set SYS_fcntl, 72
	.set SYS_exit_group, 231
	.set SYS_accept4, 288

_start:
	# SIGCHLD: SIG_IGN with SA_NOCLDWAIT.
	mov qword ptr [SIGACT], 1
	mov qword ptr [SIGACT + 8], 2
	mov eax, SYS_rt_sigaction
	mov edi, 17
	mov esi, SIGACT
	xor edx, edx
	mov r10d, 8
	syscall
	# fd 3 (the spawn socket) is not for the processes: close-on-exec.
	mov eax, SYS_fcntl
	mov edi, 3
	mov esi, 2                  # F_SETFD
	mov edx, 1                  # FD_CLOEXEC
	syscall
	mov qword ptr [DELAY + 8], 10000000

accept:
	mov eax, SYS_accept4
	mov edi, 3
	xor esi, esi
	xor edx, edx
	mov r10d, 0x80000           # SOCK_CLOEXEC
	syscall
	test rax, rax
	jns forkshim
	cmp rax, -9                 # EBADF: no spawn socket; just reap
	je idle
	cmp rax, -88                # ENOTSOCK
	je idle
	cmp rax, -22                # EINVAL: not listening
	je idle
	cmp rax, -4                 # EINTR
	je accept
	mov eax, SYS_nanosleep      # anything else (ENOMEM, EMFILE...): retry soon
	mov edi, DELAY
	xor esi, esi
	syscall
	jmp accept

forkshim:
	mov r12, rax
	mov eax, SYS_fork
	syscall
	test rax, rax
	jz shim
	# pid 1, or a failed fork (the server sees the connection close).
	mov eax, SYS_close
	mov rdi, r12
	syscall
	jmp accept

idle:
	mov eax, SYS_pause
	syscall
	jmp idle

shim:
	mov [CONNFD], r12
	# SIGCHLD back to its default, to wait for the process (which
	# inherits the disposition).
	mov qword ptr [SIGACT], 0
	mov qword ptr [SIGACT + 8], 0
	mov eax, SYS_rt_sigaction
	mov edi, 17
	mov esi, SIGACT
	xor edx, edx
	mov r10d, 8
	syscall
	mov qword ptr [IOV], PROG
	mov qword ptr [IOV + 8], PROGLEN
	mov qword ptr [MSGHDR + 16], IOV
	mov qword ptr [MSGHDR + 24], 1
	mov qword ptr [MSGHDR + 32], CTRL
	mov qword ptr [MSGHDR + 40], CTRLLEN
recv:
	mov eax, SYS_recvmsg
	mov rdi, r12
	mov esi, MSGHDR
	mov edx, 0x40000000         # MSG_CMSG_CLOEXEC
	syscall
	cmp rax, -4
	je recv
	test rax, rax
	jle shimexit
	mov eax, SYS_vfork
	syscall
	test rax, rax
	jz run
	js vforkfailed
	mov r13, rax
	# The descriptors were for the process: the shim lets them go.
	cmp qword ptr [MSGHDR + 40], 20
	jb started
	mov r14d, CTRL + 16
	mov r15d, dword ptr [CTRL]
	add r15, CTRL
closefd:
	cmp r14, r15
	jae started
	mov eax, SYS_close
	mov edi, dword ptr [r14]
	syscall
	add r14, 4
	jmp closefd
started:
	mov qword ptr [OUT], 4
	mov [OUT + 8], r13
	mov qword ptr [OUT + 16], 0
	call report
wait:
	mov eax, SYS_wait4
	mov rdi, r13
	mov esi, STATUS
	xor edx, edx
	xor r10d, r10d
	syscall
	cmp rax, -4
	je wait
	mov qword ptr [OUT], 3
	mov ecx, dword ptr [STATUS]
	mov [OUT + 8], rcx
	mov [OUT + 16], rax
	call report
	xor edi, edi
	mov eax, SYS_exit_group
	syscall
vforkfailed:
	mov qword ptr [OUT], 2
	mov qword ptr [OUT + 8], 0
	mov [OUT + 16], rax
	call report
shimexit:
	mov edi, 1
	mov eax, SYS_exit_group
	syscall

# report sends OUT on the connection, ignoring a server that went away.
report:
	mov eax, SYS_sendto
	mov edi, dword ptr [CONNFD]
	mov esi, OUT
	mov edx, 24
	mov r10d, 0x4000            # MSG_NOSIGNAL
	xor r8d, r8d
	xor r9d, r9d
	syscall
	ret

# run is the vfork child: it shares the shim's memory and stack until
# execve, so it keeps to registers and makes no calls.
run:
	mov ebx, PROG
step:
	mov rax, [rbx]
	cmp rax, -1
	je noexec
	mov r15, [rbx + 8]
	mov rdi, [rbx + 16]
	bt r15, 0
	jnc 1f
	mov edi, dword ptr [rdi]
1:	mov rsi, [rbx + 24]
	bt r15, 1
	jnc 2f
	mov esi, dword ptr [rsi]
2:	mov rdx, [rbx + 32]
	bt r15, 2
	jnc 3f
	mov edx, dword ptr [rdx]
3:	mov r10, [rbx + 40]
	bt r15, 3
	jnc 4f
	mov r10d, dword ptr [r10]
4:	mov r8, [rbx + 48]
	bt r15, 4
	jnc 5f
	mov r8d, dword ptr [r8]
5:	mov r9, [rbx + 56]
	bt r15, 5
	jnc 6f
	mov r9d, dword ptr [r9]
6:	syscall
	cmp rax, -4095
	jb next
	bt r15, 8
	jnc failed
next:
	add rbx, 64
	jmp step
noexec:
	xor eax, eax
failed:
	mov qword ptr [OUT], 2
	mov [OUT + 8], rbx
	mov [OUT + 16], rax
	mov eax, SYS_sendto
	mov edi, dword ptr [CONNFD]
	mov esi, OUT
	mov edx, 24
	mov r10d, 0x4000
	xor r8d, r8d
	xor r9d, r9d
	syscall
	mov edi, 127
	mov eax, SYS_exit_group
	syscall
