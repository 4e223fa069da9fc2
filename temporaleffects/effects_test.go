package temporaleffects_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

// workflows records what the effects asked of Temporal; the Temporal dev
// server path is tested end to end by TestReservationSagaLoop.
type workflows struct {
	mu      sync.Mutex
	started map[string]int
	signals []temporaleffects.SignalWorkflow
}

func (w *workflows) StartWorkflow(_ context.Context, req temporaleffects.StartWorkflow) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.started[req.WorkflowID]++
	return nil
}

func (w *workflows) SignalWorkflow(_ context.Context, req temporaleffects.SignalWorkflow) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if req.WorkflowID == "gone" {
		return fmt.Errorf("no such workflow: %w", temporaleffects.ErrWorkflowNotFound)
	}
	w.signals = append(w.signals, req)
	return nil
}

func TestTemporalEffects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	reg := reactors.NewRegistry(nil)
	wf := &workflows{started: map[string]int{}}
	if err := temporaleffects.Add(reg, wf, &temporaleffects.Opts{MaxAttempts: 2}); err != nil {
		t.Fatal(err)
	}
	err := reactors.AddReactor(reg, reactors.Reactor[string]{
		Name: "orchestrate", Codec: typeCodec{}, Subscribe: eventstore.NewQuery(eventstore.Types("Start", "Signal")),
		React: func(rec eventstore.Record[string]) ([]eventstore.PlannedEffect, error) {
			target := string(rec.Data)
			if rec.Event == "Start" {
				return []eventstore.PlannedEffect{temporaleffects.StartWorkflowEffect("start:"+target, temporaleffects.StartWorkflow{
					WorkflowID: target, WorkflowType: "Saga", Input: json.RawMessage(`{"n":1}`)})}, nil
			}
			return []eventstore.PlannedEffect{temporaleffects.SignalWorkflowEffect("signal:"+rec.ID.String(), temporaleffects.SignalWorkflow{
				WorkflowID: target, Signal: "paid"})}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, pool, reg, nil)
	for _, ev := range []struct{ typ, target string }{{"Start", "wf-1"}, {"Start", "wf-1"}, {"Signal", "wf-1"}, {"Signal", "gone"}} {
		if _, err := env.Store.Append(ctx, eventstore.AppendRequest{Stream: "s", Events: []eventstore.EventData{{Type: ev.typ, Data: []byte(ev.target)}}}); err != nil {
			t.Fatal(err)
		}
	}
	testriver.WaitFor(t, 30*time.Second, "effects to settle", func() (bool, error) {
		return count(`SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled')`) == 0 &&
			count(`SELECT count(*) FROM river_job`) == 4+2+1, nil // 4 reactions, 2 signals, 1 start (same key twice)
	})
	wf.mu.Lock()
	defer wf.mu.Unlock()
	if wf.started["wf-1"] != 1 {
		t.Errorf("wf-1 started %d times, want once: both starts share an effect key", wf.started["wf-1"])
	}
	if len(wf.signals) != 1 || wf.signals[0].Signal != "paid" {
		t.Errorf("signals %+v", wf.signals)
	}
	if n := count(`SELECT count(*) FROM river_job WHERE state = 'cancelled' AND kind = $1`, reactors.EffectKindPrefix+temporaleffects.EffectSignalWorkflow); n != 1 {
		t.Errorf("%d cancelled signals, want the one to a missing workflow", n)
	}
	if err := temporaleffects.Add(reactors.NewRegistry(nil), nil, nil); err == nil {
		t.Error("nil Workflows accepted")
	}
}

// typeCodec decodes every record as its type name.
type typeCodec struct{}

func (typeCodec) Encode(string) (eventstore.EventData, error) {
	return eventstore.EventData{}, errors.ErrUnsupported
}
func (typeCodec) Decode(rec eventstore.RawRecord) (string, error) { return rec.Type, nil }
