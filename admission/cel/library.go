package cel

import (
	"regexp"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// kubernetesLists declares the list functions Kubernetes adds to CEL and
// cel-go's ext.Lists lacks: isSorted, sum, min, max, indexOf, lastIndexOf.
func kubernetesLists() cel.EnvOption {
	t := cel.TypeParamType("T")
	list := cel.ListType(t)
	return cel.Lib(library{opts: []cel.EnvOption{
		cel.Function("isSorted", cel.MemberOverload("kubernetes_list_is_sorted", []*cel.Type{list}, cel.BoolType,
			cel.UnaryBinding(isSorted))),
		cel.Function("sum", cel.MemberOverload("kubernetes_list_sum", []*cel.Type{list}, t,
			cel.UnaryBinding(sum))),
		cel.Function("min", cel.MemberOverload("kubernetes_list_min", []*cel.Type{list}, t,
			cel.UnaryBinding(func(l ref.Val) ref.Val { return extreme(l, -1, "min") }))),
		cel.Function("max", cel.MemberOverload("kubernetes_list_max", []*cel.Type{list}, t,
			cel.UnaryBinding(func(l ref.Val) ref.Val { return extreme(l, 1, "max") }))),
		cel.Function("indexOf", cel.MemberOverload("kubernetes_list_index_of", []*cel.Type{list, t}, cel.IntType,
			cel.BinaryBinding(func(l, x ref.Val) ref.Val { return indexOf(l, x, false) }))),
		cel.Function("lastIndexOf", cel.MemberOverload("kubernetes_list_last_index_of", []*cel.Type{list, t}, cel.IntType,
			cel.BinaryBinding(func(l, x ref.Val) ref.Val { return indexOf(l, x, true) }))),
	}})
}

// kubernetesRegex declares Kubernetes' string find and findAll.
func kubernetesRegex() cel.EnvOption {
	return cel.Lib(library{opts: []cel.EnvOption{
		cel.Function("find", cel.MemberOverload("kubernetes_string_find", []*cel.Type{cel.StringType, cel.StringType}, cel.StringType,
			cel.BinaryBinding(func(s, re ref.Val) ref.Val {
				all := findAll(s, re, 1)
				if l, ok := all.(traits.Lister); ok {
					if l.Size() == types.IntZero {
						return types.String("")
					}
					return l.Get(types.IntZero)
				}
				return all
			}))),
		cel.Function("findAll",
			cel.MemberOverload("kubernetes_string_find_all", []*cel.Type{cel.StringType, cel.StringType}, cel.ListType(cel.StringType),
				cel.BinaryBinding(func(s, re ref.Val) ref.Val { return findAll(s, re, -1) })),
			cel.MemberOverload("kubernetes_string_find_all_n", []*cel.Type{cel.StringType, cel.StringType, cel.IntType}, cel.ListType(cel.StringType),
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					n, ok := args[2].(types.Int)
					if !ok {
						return types.MaybeNoSuchOverloadErr(args[2])
					}
					return findAll(args[0], args[1], int(n))
				}))),
	}})
}

type library struct{ opts []cel.EnvOption }

func (l library) CompileOptions() []cel.EnvOption     { return l.opts }
func (l library) ProgramOptions() []cel.ProgramOption { return nil }

func isSorted(v ref.Val) ref.Val {
	l, ok := v.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	var prev ref.Val
	for it := l.Iterator(); it.HasNext() == types.True; {
		x := it.Next()
		if prev != nil {
			c, ok := prev.(traits.Comparer)
			if !ok {
				return types.MaybeNoSuchOverloadErr(prev)
			}
			cmp := c.Compare(x)
			if types.IsError(cmp) {
				return cmp
			}
			if cmp == types.IntOne {
				return types.False
			}
		}
		prev = x
	}
	return types.True
}

func sum(v ref.Val) ref.Val {
	l, ok := v.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	var total ref.Val = types.IntZero
	first := true
	for it := l.Iterator(); it.HasNext() == types.True; {
		x := it.Next()
		if first {
			total, first = x, false
			continue
		}
		a, ok := total.(traits.Adder)
		if !ok {
			return types.MaybeNoSuchOverloadErr(total)
		}
		total = a.Add(x)
		if types.IsError(total) {
			return total
		}
	}
	return total
}

// extreme returns the minimum (dir -1) or maximum (dir 1) of a list.
func extreme(v ref.Val, dir types.Int, name string) ref.Val {
	l, ok := v.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	if l.Size() == types.IntZero {
		return types.NewErr("%s called on empty list", name)
	}
	var best ref.Val
	for it := l.Iterator(); it.HasNext() == types.True; {
		x := it.Next()
		if best == nil {
			best = x
			continue
		}
		c, ok := x.(traits.Comparer)
		if !ok {
			return types.MaybeNoSuchOverloadErr(x)
		}
		cmp := c.Compare(best)
		if types.IsError(cmp) {
			return cmp
		}
		if cmp == dir {
			best = x
		}
	}
	return best
}

func indexOf(v, x ref.Val, last bool) ref.Val {
	l, ok := v.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	n := int64(l.Size().(types.Int))
	found := types.Int(-1)
	for i := int64(0); i < n; i++ {
		if l.Get(types.Int(i)).Equal(x) == types.True {
			found = types.Int(i)
			if !last {
				break
			}
		}
	}
	return found
}

func findAll(s, re ref.Val, n int) ref.Val {
	str, ok := s.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(s)
	}
	pattern, ok := re.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(re)
	}
	r, err := regexp.Compile(string(pattern))
	if err != nil {
		return types.WrapErr(err)
	}
	if n == 0 {
		return types.NewStringList(types.DefaultTypeAdapter, []string{})
	}
	return types.NewStringList(types.DefaultTypeAdapter, r.FindAllString(string(str), n))
}
