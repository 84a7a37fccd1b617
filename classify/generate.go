package classify

//go:generate go test -run TestDefaultRulesUpToDate -update .
