// Package cel holds what admission configuration (webhook matchConditions,
// ValidatingAdmissionPolicy) sees of a request: the CEL environment and the
// evaluation of its expressions, the request's variables, and the
// rule/selector matching both kinds of configuration share.
//
// Objects are given to CEL as untyped JSON-like values (everything is
// declared dyn): pgkube has no per-kind CEL types, so type errors in an
// expression show at evaluation rather than at compilation.
package cel

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
)

// Names of the variables an expression may use.
const (
	Object          = "object"
	OldObject       = "oldObject"
	RequestVar      = "request"
	Params          = "params"
	NamespaceObject = "namespaceObject"
	Variables       = "variables"
)

// Cost limits as kube-apiserver sets them: one expression may not cost more
// than PerCallLimit, and all expressions of one policy binding evaluated
// for one request share RuntimeBudget.
const (
	PerCallLimit  = 1_000_000
	RuntimeBudget = 10_000_000
	// interruptEvery is how many comprehension steps pass between checks
	// of the request's context, so a cancelled request stops evaluating.
	interruptEvery = 100
)

// ErrOutOfBudget is wrapped by evaluations stopped because the shared
// budget ran out.
var ErrOutOfBudget = errors.New("validation failed due to running out of cost budget, no further validation rules will be run")

// Env compiles expressions over a fixed set of variables.
type Env struct {
	env *cel.Env
}

// NewEnv returns an environment declaring vars (of the names above) with
// the libraries kube-apiserver offers as far as cel-go has them.
func NewEnv(vars ...string) (*Env, error) {
	opts := []cel.EnvOption{
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		cel.ASTValidators(
			cel.ValidateDurationLiterals(),
			cel.ValidateTimestampLiterals(),
			cel.ValidateRegexLiterals(),
			cel.ValidateHomogeneousAggregateLiterals(),
		),
		ext.Strings(ext.StringsVersion(2)),
		ext.Sets(),
		ext.Lists(ext.ListsVersion(3)),
		ext.TwoVarComprehensions(),
		ext.Network(),
		kubernetesLists(),
		kubernetesRegex(),
	}
	for _, v := range vars {
		opts = append(opts, cel.Variable(v, cel.DynType))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	return &Env{env: env}, nil
}

// Program is one compiled expression.
type Program struct {
	Expression string
	prg        cel.Program
}

// Result is the type an expression must have.
type Result int

const (
	AnyResult Result = iota
	BoolResult
	StringResult
)

func (r Result) celType() *cel.Type {
	switch r {
	case BoolResult:
		return cel.BoolType
	case StringResult:
		return cel.StringType
	}
	return nil
}

// Compile type-checks expr, which must evaluate to want (or to dyn, whose
// type is only known at evaluation). Errors read as kube-apiserver's.
func (e *Env) Compile(expr string, want Result) (*Program, error) {
	ast, issues := e.env.Compile(expr)
	if issues != nil && issues.Err() != nil {
		return nil, errors.New("compilation failed: " + issues.String())
	}
	if w := want.celType(); w != nil {
		out := ast.OutputType()
		if !out.IsExactType(w) && !out.IsExactType(cel.DynType) {
			return nil, fmt.Errorf("must evaluate to %v but got %v", w, out)
		}
	}
	prg, err := e.env.Program(ast,
		cel.EvalOptions(cel.OptOptimize, cel.OptTrackCost),
		cel.CostLimit(PerCallLimit),
		cel.InterruptCheckFrequency(interruptEvery),
	)
	if err != nil {
		return nil, fmt.Errorf("program instantiation failed: %w", err)
	}
	return &Program{Expression: expr, prg: prg}, nil
}

// Budget is the cost still allowed to the expressions of one evaluation.
// Not safe for concurrent use: an evaluation runs on one goroutine.
type Budget struct{ remaining int64 }

// NewBudget returns a budget of n cost units.
func NewBudget(n int64) *Budget { return &Budget{remaining: n} }

func (b *Budget) spend(cost *uint64) error {
	if b == nil {
		return nil
	}
	if cost == nil || *cost > math.MaxInt64 || int64(*cost) > b.remaining {
		b.remaining = -1
		return ErrOutOfBudget
	}
	b.remaining -= int64(*cost)
	return nil
}

// Eval evaluates p over act, charging its cost to b (nil: no shared
// budget). An error of the expression itself reads "expression '...'
// resulted in error: ..."; one wrapping ErrOutOfBudget means later
// expressions must not run either.
func (p *Program) Eval(ctx context.Context, act *Activation, b *Budget) (ref.Val, error) {
	act.ctx, act.budget = ctx, b
	val, details, err := p.prg.ContextEval(ctx, act)
	if details != nil {
		if berr := b.spend(details.ActualCost()); berr != nil {
			return nil, berr
		}
	}
	if errors.Is(err, ErrOutOfBudget) || (b != nil && b.remaining < 0) {
		return nil, ErrOutOfBudget
	}
	if err != nil {
		return nil, fmt.Errorf("expression '%s' resulted in error: %w", p.Expression, err)
	}
	return val, nil
}

// EvalBool evaluates a condition: anything but a bool is an error.
func (p *Program) EvalBool(ctx context.Context, act *Activation, b *Budget) (bool, error) {
	v, err := p.Eval(ctx, act, b)
	if err != nil {
		return false, err
	}
	bv, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression '%s' resulted in error: must evaluate to bool but got %v", p.Expression, v.Type().TypeName())
	}
	return bool(bv), nil
}
