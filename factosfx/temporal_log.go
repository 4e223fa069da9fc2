package factosfx

import (
	"errors"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
)

// quietRejections logs the SDK's "Activity error." at info level when the
// error is a domain rejection: a sold-out concert is an outcome, not an
// error, and must not page anyone. Every other error stays at error level.
type quietRejections struct{ log.Logger }

func (q quietRejections) Error(msg string, keyvals ...any) {
	for i := 1; i < len(keyvals); i += 2 {
		err, ok := keyvals[i].(error)
		var app *temporal.ApplicationError
		if ok && errors.As(err, &app) && app.NonRetryable() && app.HasDetails() {
			q.Logger.Info(msg, keyvals...)
			return
		}
	}
	q.Logger.Error(msg, keyvals...)
}
