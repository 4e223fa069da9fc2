package tickets

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/projections"
)

// ProjectionConcertSales names the domain's projection: seats sold and
// buyers per concert.
const ProjectionConcertSales = "concert_sales"

// ConcertSales is one concert in the concert_sales view.
type ConcertSales struct {
	ConcertID string `json:"concert_id"`
	// Scheduled is set once the concert's schedule is applied; Capacity
	// comes with it.
	Scheduled bool `json:"scheduled"`
	Capacity  int  `json:"capacity"`
	SeatsSold int  `json:"seats_sold"`
	// Buyers maps each buyer to the seats they bought.
	Buyers map[string]int `json:"buyers"`
}

// FoldConcertSales folds records into sales (which it creates when nil)
// and returns it: the view as a pure function of the log. The projection
// applies each batch's fold to its tables; tests compare the tables with
// the fold of the whole log.
func FoldConcertSales(sales map[string]*ConcertSales, records []eventstore.Record[Event]) map[string]*ConcertSales {
	if sales == nil {
		sales = map[string]*ConcertSales{}
	}
	concert := func(id string) *ConcertSales {
		c, ok := sales[id]
		if !ok {
			c = &ConcertSales{ConcertID: id, Buyers: map[string]int{}}
			sales[id] = c
		}
		return c
	}
	for _, r := range records {
		switch e := r.Event.(type) {
		case ConcertScheduled:
			c := concert(e.ConcertID)
			c.Scheduled, c.Capacity = true, e.Capacity
		case TicketSold:
			c := concert(e.ConcertID)
			c.SeatsSold++
			c.Buyers[e.BuyerID]++
		}
	}
	return sales
}

// ConcertSalesFromLog folds the whole log with FoldConcertSales: what the
// concert_sales view holds once it has caught up with the log. Tests
// compare the two.
func ConcertSalesFromLog(ctx context.Context, store *eventstore.Store, codec eventstore.Codec[Event]) (map[string]*ConcertSales, error) {
	q := ConcertSalesProjection(codec).Query
	var sales map[string]*ConcertSales
	for after := eventstore.Position(0); ; {
		page, err := store.ReadAfter(ctx, after, &eventstore.ReadAfterOpts{Query: &q})
		if err != nil {
			return nil, err
		}
		records, err := eventstore.Decode(codec, page.Records)
		if err != nil {
			return nil, err
		}
		sales = FoldConcertSales(sales, records)
		if len(page.Records) == 0 {
			return sales, nil
		}
		after = page.Next
	}
}

// ConcertSalesProjection is the concert_sales projection: every schedule
// and every sold ticket, folded into ticket_sales and ticket_sales_buyers
// in the runner's transaction, one round trip per batch.
func ConcertSalesProjection(codec eventstore.Codec[Event]) projections.Projection[Event] {
	return projections.Projection[Event]{
		Name:  ProjectionConcertSales,
		Query: eventstore.NewQuery(eventstore.Types(TypeConcertScheduled, TypeTicketSold)),
		Codec: codec,
		Apply: applyConcertSales,
		Reset: func(ctx context.Context, tx pgx.Tx, from eventstore.Position) error {
			if from > 0 {
				// The rows are sums: what came from the later events cannot
				// be taken out of them.
				return errors.New("concert_sales can only be rebuilt from position 0")
			}
			if _, err := tx.Exec(ctx, `DELETE FROM ticket_sales_buyers`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM ticket_sales`)
			return err
		},
	}
}

func applyConcertSales(ctx context.Context, tx pgx.Tx, records []eventstore.Record[Event]) error {
	delta := FoldConcertSales(nil, records)
	ids := slices.Sorted(maps.Keys(delta))
	var capacity []*int32
	var sold []int32
	var bConcert, bBuyer []string
	var bSeats []int32
	for _, id := range ids {
		c := delta[id]
		var capa *int32
		if c.Scheduled {
			v := int32(c.Capacity)
			capa = &v
		}
		capacity, sold = append(capacity, capa), append(sold, int32(c.SeatsSold))
		for _, buyer := range slices.Sorted(maps.Keys(c.Buyers)) {
			bConcert, bBuyer, bSeats = append(bConcert, id), append(bBuyer, buyer), append(bSeats, int32(c.Buyers[buyer]))
		}
	}
	// Sorted keys: concurrent writers of these rows (a rebuild racing a
	// runner) lock them in one order.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO ticket_sales (concert_id, capacity, seats_sold)
		SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[])
		ON CONFLICT (concert_id) DO UPDATE SET capacity = coalesce(excluded.capacity, ticket_sales.capacity),
			seats_sold = ticket_sales.seats_sold + excluded.seats_sold`, ids, capacity, sold)
	b.Queue(`INSERT INTO ticket_sales_buyers (concert_id, buyer_id, seats)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int4[])
		ON CONFLICT (concert_id, buyer_id) DO UPDATE SET seats = ticket_sales_buyers.seats + excluded.seats`, bConcert, bBuyer, bSeats)
	b.Queue(`UPDATE ticket_sales s SET buyers = (SELECT count(*) FROM ticket_sales_buyers b WHERE b.concert_id = s.concert_id)
		WHERE s.concert_id = ANY($1)`, ids)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("error writing concert sales: %w", err)
	}
	return nil
}

// RegisterProjections adds the domain's projections to reg.
func RegisterProjections(reg *projections.Registry, codec eventstore.Codec[Event]) error {
	return projections.AddProjection(reg, ConcertSalesProjection(codec))
}

// Querier is what ReadConcertSales reads through: a pool, a connection or
// a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ReadConcertSales reads the concert_sales view, every concert or those
// given.
func ReadConcertSales(ctx context.Context, q Querier, concertIDs ...string) (map[string]*ConcertSales, error) {
	out := map[string]*ConcertSales{}
	rows, err := q.Query(ctx, `SELECT concert_id, capacity, seats_sold, buyers FROM ticket_sales
		WHERE coalesce(cardinality($1::text[]), 0) = 0 OR concert_id = ANY($1)`, concertIDs)
	if err != nil {
		return nil, fmt.Errorf("error reading ticket_sales: %w", err)
	}
	counts := map[string]int{}
	for rows.Next() {
		c := &ConcertSales{Buyers: map[string]int{}}
		var capa *int32
		var buyers int
		if err := rows.Scan(&c.ConcertID, &capa, &c.SeatsSold, &buyers); err != nil {
			rows.Close()
			return nil, err
		}
		if capa != nil {
			c.Scheduled, c.Capacity = true, int(*capa)
		}
		out[c.ConcertID], counts[c.ConcertID] = c, buyers
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.Query(ctx, `SELECT concert_id, buyer_id, seats FROM ticket_sales_buyers
		WHERE coalesce(cardinality($1::text[]), 0) = 0 OR concert_id = ANY($1)`, concertIDs)
	if err != nil {
		return nil, fmt.Errorf("error reading ticket_sales_buyers: %w", err)
	}
	for rows.Next() {
		var concert, buyer string
		var seats int
		if err := rows.Scan(&concert, &buyer, &seats); err != nil {
			rows.Close()
			return nil, err
		}
		c, ok := out[concert]
		if !ok {
			rows.Close()
			return nil, fmt.Errorf("ticket_sales_buyers has buyer %s of concert %s, which ticket_sales lacks", buyer, concert)
		}
		c.Buyers[buyer] = seats
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for id, n := range counts {
		if n != len(out[id].Buyers) {
			return nil, fmt.Errorf("ticket_sales counts %d buyers for concert %s, ticket_sales_buyers has %d", n, id, len(out[id].Buyers))
		}
	}
	return out, nil
}
