package main

import (
	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/projections"
	"github.com/factos-go/factos/reactors"
)

// ticketDomain plugs the ticket example into the worker.
func ticketDomain() factosfx.Domain {
	codec := tickets.NewCodec()
	return factosfx.Domain{
		Name:       "tickets",
		Migrations: tickets.Migrations(),
		Reactors: func(reg *reactors.Registry, env factosfx.DomainEnv) error {
			if err := tickets.RegisterReactions(reg, codec, env.Pool); err != nil {
				return err
			}
			if env.Temporal {
				return tickets.RegisterPaymentSignals(reg, codec)
			}
			return nil
		},
		Projections: func(reg *projections.Registry, _ factosfx.DomainEnv) error {
			return tickets.RegisterProjections(reg, codec)
		},
		Commands:     func(reg *activities.Registry) error { return tickets.RegisterCommands(reg, codec) },
		Workflows:    tickets.RegisterWorkflows,
		DomainErrors: tickets.DomainErrors,
	}
}
