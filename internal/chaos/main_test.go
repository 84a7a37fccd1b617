package chaos

import (
	"os"
	"testing"

	"github.com/declinemon/declinemon/internal/chserver"
)

// TestMain serves as a ClickHouse server when chserver started this test
// binary as one (the storage cases' servers), and runs the tests otherwise.
func TestMain(m *testing.M) {
	chserver.Child()
	os.Exit(m.Run())
}
