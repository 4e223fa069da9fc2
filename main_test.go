package factos_test

import (
	"testing"

	"github.com/factos-go/factos/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
