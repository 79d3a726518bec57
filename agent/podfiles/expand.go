package podfiles

// Expand is a container's command or args with $(VAR) references to its
// environment replaced, as a kubelet does before starting it.
func Expand(args []string, env []EnvVar) []string {
	if len(args) == 0 {
		return nil
	}
	vals := make(map[string]string, len(env))
	for _, e := range env {
		vals[e.Name] = e.Value
	}
	lookup := func(name string) (string, bool) {
		v, ok := vals[name]
		return v, ok
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, lookup)
	}
	return out
}
