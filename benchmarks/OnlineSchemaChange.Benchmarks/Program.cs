using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(OnlineSchemaChange.Benchmarks.BinlogDecodeBenchmarks).Assembly).Run(args);
