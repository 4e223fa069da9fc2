package projections_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/projections"
)

func TestAddProjectionRefusesInvalidProjections(t *testing.T) {
	t.Parallel()
	apply := func(context.Context, pgx.Tx, []eventstore.Record[note]) error { return nil }
	valid := projections.Projection[note]{Name: "p", Query: allEvents, Codec: noteCodec{}, Apply: apply}
	for _, tc := range []struct {
		name   string
		change func(p *projections.Projection[note])
		want   string
	}{
		{"empty name", func(p *projections.Projection[note]) { p.Name = "" }, "name"},
		{"name with a space", func(p *projections.Projection[note]) { p.Name = "a b" }, "name"},
		{"no codec", func(p *projections.Projection[note]) { p.Codec = nil }, "Codec"},
		{"no apply", func(p *projections.Projection[note]) { p.Apply = nil }, "Apply"},
		{"empty query", func(p *projections.Projection[note]) { p.Query = eventstore.Query{} }, "Query"},
		{"negative batch", func(p *projections.Projection[note]) { p.BatchSize = -1 }, "BatchSize"},
		{"huge batch", func(p *projections.Projection[note]) { p.BatchSize = projections.MaxBatchSize + 1 }, "BatchSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := valid
			tc.change(&p)
			err := projections.AddProjection(projections.NewRegistry(), p)
			if !errors.Is(err, projections.ErrInvalidProjection) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidProjection naming %s", err, tc.want)
			}
		})
	}
	reg := projections.NewRegistry()
	if err := projections.AddProjection(reg, valid); err != nil {
		t.Fatal(err)
	}
	if err := projections.AddProjection(reg, valid); !errors.Is(err, projections.ErrInvalidProjection) {
		t.Fatalf("duplicate: %v", err)
	}
	if infos := reg.Infos(); len(infos) != 1 || infos[0].Name != "p" || infos[0].Resettable || infos[0].Query != allEvents.String() {
		t.Fatalf("infos %+v", infos)
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := projections.New(b.store, projections.NewRegistry(), &projections.Config{
		BatchSize: projections.MaxBatchSize + 1, PollInterval: time.Microsecond, RetryMin: time.Minute, RetryMax: time.Second,
	})
	if !errors.Is(err, projections.ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, field := range []string{"BatchSize", "PollInterval", "RetryMax"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	if _, err := projections.New(nil, projections.NewRegistry(), nil); err == nil {
		t.Error("New without a store")
	}
	def := (*projections.Config)(nil).WithDefaults()
	if def.BatchSize != projections.DefaultBatchSize || def.PollInterval != projections.DefaultPollInterval ||
		def.LeaseInterval != projections.DefaultLeaseInterval || def.Owner == "" || def.Logger == nil {
		t.Fatalf("defaults %+v", def)
	}
}

// Reset needs the projection's Reset function; unknown names and bad
// positions are refused, and nothing changes.
func TestResetRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := projections.NewRegistry()
	err := projections.AddProjection(reg, projections.Projection[note]{Name: "no-reset", Query: allEvents, Codec: noteCodec{},
		Apply: func(context.Context, pgx.Tx, []eventstore.Record[note]) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := projections.AddProjection(reg, spec{name: "p", query: allEvents}.projection()); err != nil {
		t.Fatal(err)
	}
	c, err := projections.New(b.store, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.appendNotes("s", nil, "A"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts *projections.ResetOpts
		want error
	}{
		{"no-reset", nil, projections.ErrNoReset},
		{"nope", nil, projections.ErrUnknownProjection},
		{"p", &projections.ResetOpts{From: -1}, projections.ErrInvalidPosition},
		{"p", &projections.ResetOpts{From: 1}, projections.ErrInvalidPosition}, // beyond the checkpoint (0)
		{"p", &projections.ResetOpts{From: 2}, projections.ErrInvalidPosition}, // beyond the head
	} {
		if err := c.Reset(b.ctx, tc.name, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("reset %s %+v: %v, want %v", tc.name, tc.opts, err, tc.want)
		}
	}
	st, err := c.Status(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.State != projections.StateNew || s.LastReset != nil {
			t.Errorf("%s after refused resets: %+v", s.Name, s)
		}
	}
}
