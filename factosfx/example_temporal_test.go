package factosfx_test

import (
	"fmt"
	"log/slog"

	"github.com/factos-go/factos/factosfx"
)

// A worker for Temporal Cloud with an API key: the same variables as the
// temporal CLI's. TLS turns on by itself, with the system's roots.
func ExampleTemporalClientOptions() {
	vars := map[string]string{
		"DATABASE_URL":       "postgres://app@db:5432/factos",
		"TEMPORAL_ADDRESS":   "eu-west-1.aws.api.temporal.io:7233",
		"TEMPORAL_NAMESPACE": "factos.a1b2c",
		"TEMPORAL_API_KEY":   "tcak-example\n", // read back from a file: trimmed
	}
	cfg, err := factosfx.LoadConfig(func(name string) string { return vars[name] })
	if err != nil {
		fmt.Println(err)
		return
	}
	opts, err := factosfx.TemporalClientOptions(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(opts.HostPort, opts.Namespace)
	fmt.Println("TLS:", opts.ConnectionOptions.TLS != nil, "API key:", opts.Credentials != nil)

	// Without TLS the key would travel in plain text: refused.
	vars["TEMPORAL_TLS"] = "false"
	_, err = factosfx.LoadConfig(func(name string) string { return vars[name] })
	fmt.Println(err != nil)
	// Output:
	// eu-west-1.aws.api.temporal.io:7233 factos.a1b2c
	// TLS: true API key: true
	// true
}
