package riversql_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/factos-go/factos/internal/riversql"
)

// riverTagRE is River's rule for tags (river.InsertOpts.Tags).
var riverTagRE = regexp.MustCompile(`\A[\w][\w\-]+[\w]\z`)

func TestTagFollowsRiversRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"TicketSold", "TicketSold"},
		{"buyer-2", "buyer-2"},
		{"reservation:r-1", "reservation_r-1"},
		{"a", "a__"},
		{"", "___"},
		{"-x-", "_x_"},
		{"concert.c1/ü", "concert_c1___"},
		{strings.Repeat("x", 300), strings.Repeat("x", 255)},
	} {
		got := riversql.Tag(tc.in)
		if got != tc.want {
			t.Errorf("Tag(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !riverTagRE.MatchString(got) || len(got) > 255 {
			t.Errorf("Tag(%q) = %q breaks River's rule", tc.in, got)
		}
	}
	if got := riversql.Tags("buyer-2", "", "TicketSold", "buyer-2"); strings.Join(got, ",") != "buyer-2,TicketSold" {
		t.Errorf("Tags = %v", got)
	}
}
