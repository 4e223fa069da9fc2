package projections

import (
	"context"

	"github.com/factos-go/factos/eventstore"
)

// RunUnleased runs name's runner in this goroutine without taking its
// lease, until its checkpoint reaches until: tests make such runners race
// to prove that the checkpoint's check alone keeps each batch to one
// apply.
func RunUnleased(ctx context.Context, c *Client, name string, until eventstore.Position) error {
	e, err := c.reg.lookup(name)
	if err != nil {
		return err
	}
	return c.newRunner(e, nil).run(ctx, nil, until)
}

// LeaseClass is the advisory lock class of the leases, for tests that end
// a lease's session.
const LeaseClass = int64(leaseClass)

// LeaseKey is the key of a projection's lease, for tests of names whose
// keys collide.
func LeaseKey(name string) int32 { return leaseKey(name) }
