module servicecafunctions.local/cluster

go 1.22
