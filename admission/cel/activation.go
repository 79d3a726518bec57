package cel

import (
	"context"
	"fmt"
	"reflect"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Variable is one compiled entry of a policy's spec.variables: Program is
// nil when the expression did not compile, and Err then says why.
type Variable struct {
	Name    string
	Program *Program
	Err     error
}

// Activation binds the variables of one evaluation: a request, and for
// policies a param object, the request's namespace and spec.variables.
// It is used by one goroutine at a time.
type Activation struct {
	req       *Request
	params    any
	namespace NamespaceFunc
	vars      *lazyVariables

	// Set by Program.Eval for the variables evaluated on first use.
	ctx    context.Context
	budget *Budget
}

// NamespaceFunc returns the namespaceObject variable, read only if an
// expression uses it: most policies never do, and the read may cost a
// storage round trip. nil means null.
type NamespaceFunc func() (map[string]any, error)

// NewActivation binds req, a params value (nil: null), the namespace
// (nil: null) and the policy variables defs.
func NewActivation(req *Request, params any, namespace NamespaceFunc, defs []Variable) *Activation {
	act := &Activation{req: req, params: params, namespace: namespace}
	if len(defs) > 0 {
		act.vars = &lazyVariables{act: act, defs: defs}
	}
	return act
}

// ResolveName implements interpreter.Activation. The objects are converted
// only when an expression refers to them.
func (a *Activation) ResolveName(name string) (any, bool) {
	switch name {
	case Object:
		v, err := a.req.objectValue()
		if err != nil {
			return types.NewErr("failed to prepare object variable for evaluation: %v", err), true
		}
		return v, true
	case OldObject:
		v, err := a.req.oldObjectValue()
		if err != nil {
			return types.NewErr("failed to prepare oldObject variable for evaluation: %v", err), true
		}
		return v, true
	case RequestVar:
		return a.req.requestValue(), true
	case Params:
		return a.params, true
	case NamespaceObject:
		if a.namespace == nil {
			return nil, true
		}
		ns, err := a.namespace()
		if err != nil {
			return types.NewErr("failed to prepare namespaceObject variable for evaluation: %v", err), true
		}
		if ns == nil {
			// A nil map must reach CEL as null, not as an empty map.
			return nil, true
		}
		return ns, true
	case Variables:
		if a.vars == nil {
			// Policies without spec.variables see a map with no keys, so
			// has(variables.x) is false rather than an error.
			return map[string]any{}, true
		}
		return a.vars, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *Activation) Parent() interpreter.Activation { return nil }

// lazyVariables evaluates each spec.variables entry the first time an
// expression reads it and keeps the result for the other expressions of the
// same activation, as kube-apiserver does.
type lazyVariables struct {
	act     *Activation
	defs    []Variable
	results map[string]ref.Val
}

var variablesType = types.NewObjectType("kubernetes.variables")

func (l *lazyVariables) Get(index ref.Val) ref.Val {
	name, ok := index.(types.String)
	if !ok {
		return types.NewErr("no such key: %v", index)
	}
	if v, ok := l.results[string(name)]; ok {
		return v
	}
	for _, d := range l.defs {
		if d.Name != string(name) {
			continue
		}
		if l.results == nil {
			l.results = map[string]ref.Val{}
		}
		// A variable that refers to itself finds this error instead of
		// recursing forever.
		l.results[d.Name] = types.NewErr("composited variable %q refers to itself", d.Name)
		var v ref.Val
		if d.Program == nil {
			v = types.NewErr("composited variable %q fails to compile: %v", d.Name, d.Err)
		} else if val, err := d.Program.Eval(l.act.ctx, l.act, l.act.budget); err != nil {
			v = types.WrapErr(err)
		} else {
			v = val
		}
		l.results[d.Name] = v
		return v
	}
	return types.NewErr("no such key: %v", name)
}

func (l *lazyVariables) IsSet(field ref.Val) ref.Val {
	name, ok := field.(types.String)
	if !ok {
		return types.False
	}
	for _, d := range l.defs {
		if d.Name == string(name) {
			return types.True
		}
	}
	return types.False
}

func (l *lazyVariables) ConvertToNative(reflect.Type) (any, error) {
	return nil, fmt.Errorf("variables cannot be converted to a native value")
}

func (l *lazyVariables) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return variablesType
	}
	return types.NewErr("variables cannot be converted to %v", t)
}

func (l *lazyVariables) Equal(other ref.Val) ref.Val { return types.Bool(other == ref.Val(l)) }
func (l *lazyVariables) Type() ref.Type              { return variablesType }
func (l *lazyVariables) Value() any                  { return l }
