package tickets_test

import (
	"testing"

	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factostest"
)

func TestSaleStateView(t *testing.T) {
	t.Parallel()
	q := tickets.SaleStateQuery("c1")
	scenarios{"a sale": func(t *testing.T, opts *factostest.HandlerOpts) {
		factostest.ForView(t, codec, tickets.SaleStateView(), &factostest.ProjectionOpts{Query: &q, Store: opts.Store}).
			Given(scheduled("c1", 10),
				sold("ada", 1),
				reserved("bob", "r1"), confirmed("bob", 2, "r1"),
				reserved("cy", "r2"), released("r2"),
				reserved("dee", "r3")).
			Unrelated(elsewhere...).
			Then(tickets.SaleState{
				Capacity: 10,
				Sold:     map[string]int{tickets.SaleDirect: 1, tickets.SaleReservation: 1},
				Buyers:   map[int]string{1: "ada", 2: "bob"},
				Held:     map[string]string{"r3": "dee"},
			})
	}}.run(t)
}
