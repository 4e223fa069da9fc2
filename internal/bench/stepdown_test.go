package bench

import (
	"errors"
	"slices"
	"testing"
)

// When the judged rate is not sustained, the worker's default steps down
// by tenths and stops at the first rate it sustains, so that the highest
// sustained target states a measured fraction.
func TestStepDownStopsAtTheFirstSustainedRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		sustains  int // the highest rate the fake pipeline sustains
		fractions []float64
		best      float64
	}{
		{"sustains 0.3", 3000, []float64{0.4, 0.3}, 0.3},
		{"sustains 0.4", 4000, []float64{0.4}, 0.4},
		{"sustains nothing", 0, []float64{0.4, 0.3, 0.2, 0.1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := &Results{EffectBase: &EffectBase{Cell: "keys+outbox, 16 clients", PerSecond: 10_000}}
			// The judged rate, not sustained, as the effects scenario
			// records it before it steps down.
			res.Effects = append(res.Effects, EffectRun{Variant: riverVariants[0].name, Rate: 5000, Fraction: effectJudged, Commands: 1})
			var prefixes []string
			run := func(prefix string, rate, keys int) (EffectRun, error) {
				prefixes = append(prefixes, prefix)
				if keys != 0 {
					t.Errorf("stepped down with %d ordering keys, want unordered", keys)
				}
				e := EffectRun{Variant: riverVariants[0].name, Rate: rate, Commands: int64(rate), Effects: int64(rate), PerSecond: float64(rate), ToDone: Latency{P99: 100}}
				if rate > tc.sustains {
					e.ToDone.P99 = 2000
				}
				return e, nil
			}
			if err := stepDown(run, res); err != nil {
				t.Fatal(err)
			}
			var got []float64
			for _, e := range res.Effects[1:] {
				got = append(got, e.Fraction)
			}
			if !slices.Equal(got, tc.fractions) {
				t.Errorf("stepped through %v, want %v", got, tc.fractions)
			}
			if len(slices.Compact(slices.Clone(prefixes))) != len(prefixes) {
				t.Errorf("prefixes %v are not unique", prefixes)
			}
			res.evaluate()
			judged := false
			for _, target := range res.Targets {
				for _, c := range target.Checks {
					if c.Where == "highest sustained" {
						judged = true
						if c.Value != tc.best {
							t.Errorf("highest sustained %.2f, want %.2f", c.Value, tc.best)
						}
					}
				}
			}
			if !judged {
				t.Error("the highest sustained rate was not judged")
			}
		})
	}
	t.Run("error", func(t *testing.T) {
		t.Parallel()
		res := &Results{EffectBase: &EffectBase{PerSecond: 100}}
		boom := errors.New("boom")
		err := stepDown(func(string, int, int) (EffectRun, error) { return EffectRun{}, boom }, res)
		if !errors.Is(err, boom) {
			t.Errorf("stepDown returned %v, want boom", err)
		}
	})
}
