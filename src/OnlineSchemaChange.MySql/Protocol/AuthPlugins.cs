using System.Security.Cryptography;
using System.Text;

namespace OnlineSchemaChange.MySql.Protocol;

/// <summary>Password scrambles of the authentication plugins we speak.</summary>
public static class AuthPlugins
{
    public const string NativePassword = "mysql_native_password";
    public const string CachingSha2Password = "caching_sha2_password";

    public static byte[] Scramble(string plugin, string password, ReadOnlySpan<byte> nonce) => plugin switch
    {
        NativePassword => NativePasswordScramble(password, nonce),
        CachingSha2Password => CachingSha2Scramble(password, nonce),
        _ => throw new NotSupportedException($"Authentication plugin '{plugin}' is not supported; use mysql_native_password or caching_sha2_password."),
    };

    // SHA-1 is what mysql_native_password is defined with; it is not our choice of hash.
#pragma warning disable CA5350
    /// <summary>SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))); empty password sends nothing.</summary>
    public static byte[] NativePasswordScramble(string password, ReadOnlySpan<byte> nonce)
    {
        if (password.Length == 0)
        {
            return [];
        }

        var hash1 = SHA1.HashData(Encoding.UTF8.GetBytes(password));
        var hash2 = SHA1.HashData(hash1);
        var mix = SHA1.HashData([.. nonce[..Math.Min(20, nonce.Length)], .. hash2]);
        for (var i = 0; i < hash1.Length; i++)
        {
            hash1[i] ^= mix[i];
        }

        return hash1;
    }
#pragma warning restore CA5350

    /// <summary>SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce).</summary>
    public static byte[] CachingSha2Scramble(string password, ReadOnlySpan<byte> nonce)
    {
        if (password.Length == 0)
        {
            return [];
        }

        var hash1 = SHA256.HashData(Encoding.UTF8.GetBytes(password));
        var hash2 = SHA256.HashData(hash1);
        var mix = SHA256.HashData([.. hash2, .. nonce[..Math.Min(20, nonce.Length)]]);
        for (var i = 0; i < hash1.Length; i++)
        {
            hash1[i] ^= mix[i];
        }

        return hash1;
    }

    /// <summary>caching_sha2_password full authentication without TLS: (password + NUL) XOR the nonce (repeated),
    /// encrypted with the server's RSA public key using OAEP (SHA-1), as the server decrypts it.</summary>
    public static byte[] EncryptPasswordWithPublicKey(string password, ReadOnlySpan<byte> nonce, string publicKeyPem)
    {
        var plain = Encoding.UTF8.GetBytes(password + "\0");
        var salt = nonce[..Math.Min(20, nonce.Length)];
        for (var i = 0; i < plain.Length; i++)
        {
            plain[i] ^= salt[i % salt.Length];
        }

        using var rsa = RSA.Create();
        rsa.ImportFromPem(publicKeyPem);
        return rsa.Encrypt(plain, RSAEncryptionPadding.OaepSHA1);
    }
}
