// Command worker runs factos: the Temporal worker that dispatches commands,
// the River workers that run reactions and effects, and an HTTP server for
// health, readiness, metrics and River UI. It is factosfx.Main with the
// ticket example's domain and its demo: an application's own worker is the
// same one call with its domain.
//
// Usage:
//
//	worker [run]                 run until SIGINT/SIGTERM
//	worker migrate               apply migrations and exit
//	worker migrate status        print applied and pending migrations
//	worker demo tickets [flags]  run a concurrent ticket sale
//	worker lock-strategy         print or change the database's lock strategy
//	worker spec                  print the environment and HTTP contract as JSON
//	worker projections status    print the projections' checkpoints, lag and state
//	worker projections reset|rebuild NAME [-from POS]
//	worker projections skip NAME POS
//	worker effects status|list   print effects, and halted ordering keys
//	worker effects retry|skip    run a failed effect again, or skip it
//	worker reactors status       print each reactor's ledger position, lag and jobs
//	worker reactors replay NAME [-from POS]
//	worker reactors reset NAME [-from POS] [-effects]
//
// Configuration comes from the environment; `worker spec` lists every
// variable with its default.
package main

import "github.com/factos-go/factos/factosfx"

func main() { factosfx.Main(ticketDomain(), demoCommand) }
