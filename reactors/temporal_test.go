package reactors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// workflows records what the built-in effects asked of Temporal; the
// Temporal dev server path is tested end to end in the activities package.
type workflows struct {
	mu      sync.Mutex
	started map[string]int
	signals []reactors.SignalWorkflow
}

func (w *workflows) StartWorkflow(_ context.Context, req reactors.StartWorkflow) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.started[req.WorkflowID]++
	return nil
}

func (w *workflows) SignalWorkflow(_ context.Context, req reactors.SignalWorkflow) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if req.WorkflowID == "gone" {
		return fmt.Errorf("no such workflow: %w", reactors.ErrWorkflowNotFound)
	}
	w.signals = append(w.signals, req)
	return nil
}

func TestTemporalEffects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wf := &workflows{started: map[string]int{}}
	if err := reactors.AddTemporalEffects(b.reg, wf, &reactors.TemporalOpts{MaxAttempts: 2}); err != nil {
		t.Fatal(err)
	}
	err := reactors.AddReactor(b.reg, reactors.Reactor[string]{
		Name: "orchestrate", Codec: typeCodec{}, Subscribe: eventstore.NewQuery(eventstore.Types("Start", "Signal")),
		React: func(rec eventstore.Record[string]) ([]eventstore.Effect, error) {
			target := string(rec.Data)
			if rec.Event == "Start" {
				return []eventstore.Effect{reactors.StartWorkflowEffect("start:"+target, reactors.StartWorkflow{
					WorkflowID: target, WorkflowType: "Saga", Input: json.RawMessage(`{"n":1}`)})}, nil
			}
			return []eventstore.Effect{reactors.SignalWorkflowEffect("signal:"+rec.ID.String(), reactors.SignalWorkflow{
				WorkflowID: target, Signal: "paid"})}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, b.pool, b.reg, nil)
	for _, ev := range []struct{ typ, target string }{{"Start", "wf-1"}, {"Start", "wf-1"}, {"Signal", "wf-1"}, {"Signal", "gone"}} {
		if _, err := env.Store.Append(b.ctx, eventstore.AppendRequest{Stream: "s", Events: []eventstore.EventData{{Type: ev.typ, Data: []byte(ev.target)}}}); err != nil {
			t.Fatal(err)
		}
	}
	testriver.WaitFor(t, waitLong, "effects to settle", func() (bool, error) {
		return b.count(t, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled')`) == 0 &&
			b.count(t, `SELECT count(*) FROM river_job`) == 4+2+1, nil // 4 reactions, 2 signals, 1 start (same key twice)
	})
	wf.mu.Lock()
	defer wf.mu.Unlock()
	if wf.started["wf-1"] != 1 {
		t.Errorf("wf-1 started %d times, want once: both starts share an effect key", wf.started["wf-1"])
	}
	if len(wf.signals) != 1 || wf.signals[0].Signal != "paid" {
		t.Errorf("signals %+v", wf.signals)
	}
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE state = 'cancelled' AND kind = $1`, reactors.EffectKindPrefix+reactors.EffectSignalWorkflow); n != 1 {
		t.Errorf("%d cancelled signals, want the one to a missing workflow", n)
	}
	if err := reactors.AddTemporalEffects(reactors.NewRegistry(nil), nil, nil); err == nil {
		t.Error("nil Workflows accepted")
	}
}

// typeCodec decodes every record as its type name.
type typeCodec struct{}

func (typeCodec) Encode(string) (eventstore.EventData, error) {
	return eventstore.EventData{}, errors.ErrUnsupported
}
func (typeCodec) Decode(rec eventstore.RawRecord) (string, error) { return rec.Type, nil }
