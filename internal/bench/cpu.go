package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU accounting per cell, from /proc (Linux; elsewhere every figure is
// zero). On a two-core machine the benchmark client and PostgreSQL compete
// for the same cores, so where the CPU went is part of every result: a
// scheme that needs more client CPU per command leaves less to the server.

// CPU is how many cores each party kept busy, on average, during a cell.
type CPU struct {
	// Client is this process: the benchmark's clients, pgx and the store's
	// Go code.
	Client float64 `json:"client"`
	// Server is the PostgreSQL server (postmaster and every backend).
	// Zero when the server's processes are not visible.
	Server float64 `json:"server"`
	// Other is everything else that ran on the machine. More than a few
	// hundredths of a core means the cell was disturbed.
	Other float64 `json:"other"`
	// Idle is the capacity left unused.
	Idle float64 `json:"idle"`
}

// clockTicks is USER_HZ, the unit of /proc CPU times. It is 100 on every
// Linux architecture Go supports.
const clockTicks = 100

type cpuSample struct {
	at           time.Time
	busy, idle   uint64 // machine-wide ticks
	self, server uint64 // ticks of this process and of the server
}

// cpuMeter samples CPU time of the machine, this process and the server.
type cpuMeter struct {
	postmaster int // 0: unknown
}

func (m *cpuMeter) sample() cpuSample {
	s := cpuSample{at: time.Now()}
	s.busy, s.idle = machineTicks()
	s.self, _ = processTicks("self", false)
	if m.postmaster > 0 {
		s.server = serverTicks(m.postmaster)
	}
	return s
}

// between turns two samples into cores used.
func (m *cpuMeter) between(a, b cpuSample) CPU {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 || b.busy < a.busy {
		return CPU{}
	}
	cores := func(ticks uint64) float64 { return float64(ticks) / clockTicks / secs }
	c := CPU{Client: cores(b.self - a.self), Idle: cores(b.idle - a.idle)}
	if b.server >= a.server {
		c.Server = cores(b.server - a.server)
	}
	c.Other = max(0, cores(b.busy-a.busy)-c.Client-c.Server)
	return c
}

// machineTicks reads the busy and idle ticks of all CPUs from /proc/stat.
func machineTicks() (busy, idle uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	// user nice system idle iowait irq softirq steal ...
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		if i == 4 || i == 5 {
			idle += v
		} else {
			busy += v
		}
	}
	return busy, idle
}

// processTicks returns a process's user+system ticks (with its reaped
// children's when children is set) and its parent's pid.
func processTicks(pid string, children bool) (ticks uint64, ppid int) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, 0
	}
	// The command name is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
	if len(f) < 15 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	n := 13
	if children {
		n = 15
	}
	for _, s := range f[11:n] {
		v, _ := strconv.ParseUint(s, 10, 64)
		ticks += v
	}
	return ticks, ppid
}

// serverTicks sums the postmaster's ticks (including the backends it has
// reaped) and those of its living children.
func serverTicks(postmaster int) uint64 {
	pm := strconv.Itoa(postmaster)
	total, _ := processTicks(pm, true)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == pm {
			continue
		}
		if t, ppid := processTicks(e.Name(), false); ppid == postmaster {
			total += t
		}
	}
	return total
}

// postmasterOf returns the parent of a server backend if both run on this
// machine and the parent is a postgres process, else 0.
func postmasterOf(backend int) int {
	_, ppid := processTicks(strconv.Itoa(backend), false)
	if ppid <= 1 {
		return 0
	}
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(ppid), "comm"))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres") {
		return 0
	}
	return ppid
}
