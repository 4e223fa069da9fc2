package bench

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Machine describes where a run took place, so that its numbers can be
// compared with another machine's only knowingly.
type Machine struct {
	CPUs     int    `json:"cpus"` // runtime.NumCPU: what nproc says
	CPUModel string `json:"cpu_model,omitempty"`
	MemoryMB int64  `json:"memory_mb,omitempty"`
	Kernel   string `json:"kernel,omitempty"`
	OS       string `json:"os"`
	Go       string `json:"go"`
	// Commit is the repository revision the benchmark was built from,
	// when the build recorded it.
	Commit string `json:"commit,omitempty"`

	Postgres string `json:"postgres"`
	// Settings are the server settings that shape the numbers, as SHOW
	// reports them.
	Settings map[string]string `json:"postgres_settings"`
}

// settingsShown are the server settings a report states.
var settingsShown = []string{
	"max_connections", "shared_buffers", "work_mem", "effective_cache_size",
	"fsync", "synchronous_commit", "full_page_writes", "wal_level", "wal_sync_method",
	"max_locks_per_transaction", "max_wal_size", "checkpoint_timeout",
	"autovacuum", "jit", "shared_preload_libraries",
}

func describeMachine(ctx context.Context, url string) (Machine, error) {
	m := Machine{
		CPUs:     runtime.NumCPU(),
		CPUModel: cpuModel(),
		MemoryMB: memoryMB(),
		Kernel:   strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		OS:       runtime.GOOS + "/" + runtime.GOARCH,
		Go:       runtime.Version(),
		Settings: map[string]string{},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				m.Commit = s.Value
			}
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return m, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&m.Postgres); err != nil {
		return m, err
	}
	for _, name := range settingsShown {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1, true)", name).Scan(&v); err == nil {
			m.Settings[name] = v
		}
	}
	return m, nil
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memoryMB() int64 {
	for line := range strings.SplitSeq(readFile("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb / 1024
		}
	}
	return 0
}
