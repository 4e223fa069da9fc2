package factos_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/reactors"
)

// shopEvent is the examples' event union.
type shopEvent interface{ isShopEvent() }

// orderPlaced is the examples' one event.
type orderPlaced struct {
	Order    string `json:"order"`
	Customer string `json:"customer"`
}

func (orderPlaced) isShopEvent() {}

func shopCodec() *eventstore.JSONCodec[shopEvent] {
	c := eventstore.NewJSONCodec[shopEvent]()
	eventstore.RegisterJSON(c, eventstore.JSONType[orderPlaced]{Name: "OrderPlaced",
		Tags: func(e orderPlaced) []string { return []string{"customer:" + e.Customer} }})
	return c
}

// thanks is the effect's input: one note per order.
type thanks struct {
	Order    string `json:"order"`
	Customer string `json:"customer"`
}

// shopRegistry thanks every customer for every order, in the order of
// their orders (the ordering key is the customer), recording each note
// in shop_thanks, idempotently by the effect's key.
func shopRegistry(pool *pgxpool.Pool) *reactors.Registry {
	reg := reactors.NewRegistry(nil)
	err := reactors.AddReactor(reg, reactors.Reactor[shopEvent]{
		Name:      "thank_customers",
		Codec:     shopCodec(),
		Subscribe: eventstore.NewQuery(eventstore.Types("OrderPlaced")),
		React: func(rec eventstore.Record[shopEvent]) ([]eventstore.PlannedEffect, error) {
			o := rec.Event.(orderPlaced)
			return []eventstore.PlannedEffect{{Kind: "shop.thank", Key: "thank/" + o.Order,
				Args: thanks(o), OrderingKey: "customer:" + o.Customer}}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	err = reactors.AddEffect(reg, reactors.EffectHandler[thanks]{
		Kind: "shop.thank",
		Handle: func(ctx context.Context, e reactors.Effect[thanks]) error {
			_, err := pool.Exec(ctx, `INSERT INTO shop_thanks (effect_key, customer, order_id, position)
				VALUES ($1, $2, $3, $4) ON CONFLICT (effect_key) DO NOTHING`,
				e.Key, e.Args.Customer, e.Args.Order, int64(e.Position))
			return err
		},
	})
	if err != nil {
		panic(err)
	}
	return reg
}

const shopSchema = `CREATE TABLE shop_thanks (
	effect_key text PRIMARY KEY,
	customer   text NOT NULL,
	order_id   text NOT NULL,
	position   bigint NOT NULL,
	seq        bigserial
)`

// A client wires the store, its outbox and the River workers of the
// registry; a dispatch's record is reacted to and its effect performed.
func Example() {
	ctx := context.Background()
	url, drop, err := testdb.Create(ctx) // a migrated database
	if err != nil {
		panic(err)
	}
	defer func() { _ = drop() }()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, shopSchema); err != nil {
		panic(err)
	}

	client, err := factos.NewClient(pool, shopRegistry(pool), nil)
	if err != nil {
		panic(err)
	}
	if err := client.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	ev, err := shopCodec().Encode(orderPlaced{Order: "o-1", Customer: "ada"})
	if err != nil {
		panic(err)
	}
	if _, err := client.Store().Append(ctx, eventstore.AppendRequest{Stream: "order-o-1", Events: []eventstore.EventData{ev}}); err != nil {
		panic(err)
	}

	var customer string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := pool.QueryRow(ctx, `SELECT customer FROM shop_thanks WHERE order_id = 'o-1'`).Scan(&customer); err == nil {
			break
		}
	}
	fmt.Println("thanked", customer)
	// Output: thanked ada
}
