package activities

import "context"

// SetAfterDispatch installs a function run after a dispatch committed and
// before the activity returns. Only tests can call it.
func SetAfterDispatch(a *Activities, f func(ctx context.Context, res *Result) error) {
	a.afterDispatch = f
}
