package cel

import (
	"context"
	"errors"
)

// Compiled is one compiled expression, or why it did not compile.
type Compiled struct {
	Program *Program
	Err     error
}

// MatchConditions evaluates matchConditions as kube-apiserver does: a
// condition that is false means no match, whatever errors others had;
// otherwise errors (compilation or evaluation) are returned for the
// caller's failure policy. Running out of budget stops evaluation.
func MatchConditions(ctx context.Context, conds []Compiled, act *Activation, budget *Budget) (match bool, errs []error) {
	for _, c := range conds {
		if c.Err != nil {
			errs = append(errs, c.Err)
			continue
		}
		ok, err := c.Program.EvalBool(ctx, act, budget)
		if err != nil {
			errs = append(errs, err)
			if errors.Is(err, ErrOutOfBudget) {
				break
			}
			continue
		}
		if !ok {
			return false, nil
		}
	}
	return len(errs) == 0, errs
}
