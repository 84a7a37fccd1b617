module github.com/declinemon/declinemon

go 1.26
