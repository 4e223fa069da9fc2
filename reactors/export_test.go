package reactors

// SetFault installs a function called at each step of every reaction, once
// for each job the reaction holds, with the job's first position; an
// error returned from it aborts the reaction at that step, as a crash
// would. Only tests can call it.
func SetFault(r *Registry, fault func(step string, position int64) error) { r.fault = fault }

// Steps of a reaction, in order.
var Steps = []string{"loaded", "reacted", "written", "committed"}
