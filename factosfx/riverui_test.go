package factosfx_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/reactors"
)

// River UI refuses to exist unprotected, answers 401 to wrong or missing
// credentials on both the page and the API, and with the right ones lists
// the jobs the reactors ran.
func TestRiverUIServesPageAndJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	if err := tickets.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	codec := tickets.NewCodec()
	reg := reactors.NewRegistry(nil)
	if err := tickets.RegisterReactions(reg, codec, pool); err != nil {
		t.Fatal(err)
	}
	env := testriver.Start(t, pool, reg, nil)
	if _, err := eventstore.Dispatch(ctx, env.Store, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: "c1", Capacity: 2}, nil); err != nil {
		t.Fatal(err)
	}
	for _, buyer := range []string{"ada", "bob"} {
		if _, err := eventstore.Dispatch(ctx, env.Store, tickets.BuyTicketHandler(codec), tickets.BuyTicket{ConcertID: "c1", BuyerID: buyer}, nil); err != nil {
			t.Fatal(err)
		}
	}
	testriver.WaitFor(t, 30*time.Second, "effects to complete", func() (bool, error) {
		return testriver.JobCounts(t, pool, reactors.EffectKindPrefix)["completed"] == 2, nil
	})

	if _, err := factosfx.NewRiverUIHandler(env.Client, factosfx.RiverUIConfig{}); !errors.Is(err, factosfx.ErrRiverUIUnprotected) {
		t.Fatalf("unprotected UI: err = %v, want ErrRiverUIUnprotected", err)
	}
	if _, err := factosfx.NewRiverUIHandler(env.Client, factosfx.RiverUIConfig{Username: "admin"}); err == nil {
		t.Fatal("basic auth without a password accepted")
	}
	ui, err := factosfx.NewRiverUIHandler(env.Client, factosfx.RiverUIConfig{Username: "admin", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	srv := testriver.UIServer(t, ui)

	get := func(path, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, creds := range [][2]string{{"", ""}, {"admin", "wrong"}, {"root", "s3cret"}} {
		for _, path := range []string{"/riverui/", "/riverui/api/jobs?state=completed"} {
			if code, _ := get(path, creds[0], creds[1]); code != http.StatusUnauthorized {
				t.Errorf("GET %s as %q/%q: %d, want 401", path, creds[0], creds[1], code)
			}
		}
	}
	code, page := get("/riverui/", "admin", "s3cret")
	if code != http.StatusOK || !strings.Contains(page, "<html") {
		t.Fatalf("GET /riverui/: %d %.200s", code, page)
	}
	code, body := get("/riverui/api/jobs?state=completed&limit=100", "admin", "s3cret")
	if code != http.StatusOK {
		t.Fatalf("GET jobs: %d %s", code, body)
	}
	var list struct {
		Data []struct {
			Kind  string `json:"kind"`
			State string `json:"state"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("jobs JSON: %v: %.300s", err, body)
	}
	effects := 0
	for _, j := range list.Data {
		if j.Kind == reactors.EffectKindPrefix+tickets.EffectAnnounceTicketSale && j.State == "completed" {
			effects++
		}
	}
	if effects != 2 {
		t.Errorf("River UI lists %d completed announce effects, want 2: %s", effects, body)
	}
}
