package factos_test

import (
	"testing"

	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testtemporal"
)

func TestMain(m *testing.M) { testdb.Main(m, testtemporal.Setup) }
