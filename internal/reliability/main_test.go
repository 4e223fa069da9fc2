package reliability

import (
	"os"
	"testing"

	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testtemporal"
)

func TestMain(m *testing.M) { testdb.Main(m, testtemporal.Setup, buildTestWorker) }

// long reports whether the long profile runs (FACTOS_RELIABILITY=long).
func long() bool { return os.Getenv("FACTOS_RELIABILITY") == "long" }

// scale picks the short or the long figure.
func scale(short, longer int) int {
	if long() {
		return longer
	}
	return short
}
