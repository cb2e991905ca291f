namespace OnlineSchemaChange.LocalServers;

/// <summary>
/// Starts something at most once, on first use, whoever asks first and from whatever thread. The start runs under the
/// owner's lifetime token, not the first caller's, so one impatient caller cannot cancel it for everyone; a failed start
/// stays failed, so every later caller gets the same clear error at once instead of another long wait.
/// </summary>
internal sealed class OnceAsync<T>(Func<CancellationToken, Task<T>> start, CancellationToken lifetime)
{
    private readonly Lazy<Task<T>> value = new(() => Task.Run(() => start(lifetime), CancellationToken.None));

    public bool HasStarted => value.IsValueCreated;

    public Task<T> GetAsync(CancellationToken cancellationToken) => value.Value.WaitAsync(cancellationToken);

    /// <summary>The value if it was ever started and succeeded; for disposal.</summary>
    public async Task<T?> StartedValueAsync()
    {
        if (!value.IsValueCreated)
        {
            return default;
        }

        try
        {
            return await value.Value;
        }
        catch (Exception e) when (e is LocalServerException or OperationCanceledException)
        {
            return default;
        }
    }
}
