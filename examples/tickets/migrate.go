package tickets

import (
	"context"
	"embed"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/migrations"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the example's own tables (the announcements and the
// concert_sales view) as a versioned migration line. The library's
// migrations do not include them: they belong to the application.
// `worker migrate` applies them after the store's and River's, and
// `worker migrate status` lists them.
func Migrations() *migrations.Application {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory exists
	}
	return &migrations.Application{Name: "tickets", FS: sub}
}

// Migrate applies the store's, River's and the example's migrations, as
// `worker migrate` does.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := migrations.Up(ctx, pool, &migrations.Config{Application: Migrations()})
	return err
}
