package temporaleffects_test

import (
	"encoding/json"
	"fmt"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

// A reactor that starts a workflow per order placed. The start effect's
// key, and the workflow id, derive from the order, so a repeated reaction
// starts nothing new.
func Example() {
	reg := reactors.NewRegistry(nil)
	// A worker passes its Temporal client: Adapter{Client: c, ...}.
	if err := temporaleffects.Add(reg, temporaleffects.Adapter{TaskQueue: "orders"}, nil); err != nil {
		fmt.Println(err)
		return
	}
	ship := func(rec eventstore.Record[string]) ([]eventstore.PlannedEffect, error) {
		order := string(rec.Data)
		return []eventstore.PlannedEffect{temporaleffects.StartWorkflowEffect("ship:"+order, temporaleffects.StartWorkflow{
			WorkflowID:   "shipping-" + order,
			WorkflowType: "ShippingWorkflow",
			Input:        json.RawMessage(`{"order":"` + order + `"}`),
		})}, nil
	}
	err := reactors.AddReactor(reg, reactors.Reactor[string]{
		Name: "ship_orders", Codec: typeCodec{}, Subscribe: eventstore.NewQuery(eventstore.Types("OrderPlaced")), React: ship,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	effects, _ := ship(eventstore.Record[string]{RawRecord: eventstore.RawRecord{Data: []byte("o-17")}})
	fmt.Println(effects[0].Kind, effects[0].Key)
	// Output:
	// temporal.start_workflow ship:o-17
}
