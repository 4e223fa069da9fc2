package factosfx

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
)

func TestRejectionsAreNotLoggedAsErrors(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := quietRejections{log.NewStructuredLogger(slog.New(slog.NewTextHandler(&buf, nil)))}
	l.Error("Activity error.", "Error", temporal.NewNonRetryableApplicationError("sold out", "SoldOut", nil, "details"))
	l.Error("Activity error.", "Error", temporal.NewApplicationError("db down", "factos.StoreFailure"))
	l.Error("Activity error.", "Error", errors.New("plain"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "level=INFO") || !strings.Contains(lines[1], "level=ERROR") || !strings.Contains(lines[2], "level=ERROR") {
		t.Fatalf("levels:\n%s", buf.String())
	}
}
