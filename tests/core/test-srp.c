/* test-srp.c: Cognito's SRP-6a: known vectors from amazon-cognito-identity-js,
 * client <-> server round trips, and every way a client's answer can be
 * wrong. */
#define G_LOG_DOMAIN "test-srp"

#include "config.h"

#include <string.h>

#include <gmp.h>

#include "fl-srp.h"

/* ------------------------------------------------------------------ */
/* Known vectors.  Made by tests/core/srp-vectors.mjs (see there how to
 * run it) with amazon-cognito-identity-js 6.3.21: its CognitoUser signs in
 * against a fake Cognito with a fixed a, SALT, SRP_B (from a fixed b),
 * SECRET_BLOCK and clock.  Hex is lower-case without leading zeros, except
 * the salt (as sent) and the verifier (384 bytes). */

#define VECTOR_K \
  "538282c4354742d7cbbde2359fcf67f9f5b3a6b08791e5011b43b8a5b66d9ee6"

/* V1: {"poolId":"local_AbC123","userIdForSrp":"5f0c6a2e-3d7b-4a52-9a39-1f0e1c2b3a4d","password":"Corr3ct-h0rse!"} */
#define V1_POOL \
  "AbC123"
#define V1_USER \
  "5f0c6a2e-3d7b-4a52-9a39-1f0e1c2b3a4d"
#define V1_PASSWORD \
  "Corr3ct-h0rse!"
#define V1_SALT \
  "e99c48084665d74373844f7f92099ea5"
#define V1_PRIVATE_A                                                 \
  "c3095963507779c2e6220de9252dc59c28588076535faba478389feb3876057e" \
  "d2ea46771c1f5aa4404dc3bb21cd75fb3e006112a96eeed0a5fe5a0cfd1e0160" \
  "8dcf0d337471afa723c9dbc2f9a544ebfb0f0d354b7206cfbb24270c1f09082a" \
  "a47031bd7ed94559628deef8dc0a81567edc2496988141a6eb12b09395741c21"
#define V1_PRIVATE_B                                                 \
  "2b313183523249863edbec2d3abd96e1aa6ee135ad96c33714e43233dc8beaf9" \
  "4b19802a9b4c43126b2f49240754eed22fbdecbc3324fbee52c95db76ad789e4" \
  "56aaf8a82f7016b010e0833d864e4d6ede60cdb504f7e179fb8b204b5650817b" \
  "8230cab8fca74632d00ec3a2f6dc2d58cd93edce70f31ebf5112731d6deda9f7"
#define V1_SECRET_BLOCK                                              \
  "UGo38WBEQZyWT+IOD5TF+v3dzbPNTGLNSdyHzl0LUBKiZb04+bU8yeX+9LNLIsu3" \
  "bzzeQTWctuWNH/+x6pTV3Wh3wCVL/WQrxLaAtFX/2l/4r8H+3GbduagJtMNCQmOp" \
  "3YrhqtOeC7qEAZHZcEIjBOTMfeYXN6avgTfNwld1p8Lbj4uyxAmjYr9MOLl9KfYI" \
  "F1Gfkq0WJAVDWmWFrHe82Zl7Uh62DZkzS63RFUseNgfRezQ0UamOmaZb27uMMGtZ" \
  "kzG3HUzZT68="
#define V1_TIMESTAMP \
  "Fri Nov 6 08:03:09 UTC 2026"
#define V1_X \
  "31c7731c8b1fd220d705537c4d0c51061e3ecad687411775286be0d4e364f498"
#define V1_VERIFIER                                                  \
  "c582121d974eb192ab8abf0eb12cb9f79930d821f01127e9651d5aab1feff3a2" \
  "563bf5e8937cf12523eecadac78c84d8c42319868dd63dc4548354f7408d490d" \
  "ca207ef657b4935544a9f9b91b2a989e156ff5a2f403bcd4a400730d878aaf2e" \
  "2c4a60703a59d229679ca04ac5ef94614e845e982c28fbf75612d40647bcede4" \
  "d7c30abfb17571edbb512f1b46d307e220f7fe264abddb0dfc85920557cb191c" \
  "bed8c3ccf71336dc8ef2b5611434458afe3eae5ffae6960d1f322bc64015ffb7" \
  "aaf253adfe76f17a5e5527c48dce148fcfc77464371b610d1a5d11de16f6b641" \
  "12516c65f3abe88793eee53430410db7009448f100d5c9ea637a801d1f4fb022" \
  "19317da297f068e44798365caf4934a053bdeb015eaaabca907bd77cf51ce0e0" \
  "02175c23c3afa0827dc96f718398aacf55383fd706924652340fcad848a5fa72" \
  "0d0b6ca55f5f03edab0d5a9729109ed376fe38d85be3b04759c423bc86d52aec" \
  "5b619b78907c63d089d4931078a8cecd86814c11ed8713b76ba76b41caae1f1c"
#define V1_A                                                         \
  "6b7700a4ef41da67d083b365b2482ddf2c98919bd16734d99228cb8af4a34d93" \
  "c63db2834cf8d52efaa9fb2b9e07806ff3d689f1835598171ca8c0cbc3a884e9" \
  "7a62667a8f92ba9636409ba0abafe88da248498c3ea5ee9297ff62acf0576d10" \
  "0221af9adda553262b0cb8229314b6c1e63e0ad8c7063094462ad300d4fb1379" \
  "a268d1ec0cce554bf4266fbc029bf6114291e9e760e7857dc4416be2983e3329" \
  "37dacd15dd3921207c20579d93a2388c196363f3c653257b27a539251ec0fee6" \
  "2a9ef010f9a68271c2150fca4e969c6c591477ae71cd5f9469ad8fa5137997cc" \
  "d6ec61d90dff9b0819925e7924e63b67d2a129a940802048160c2dff5a23789a" \
  "0a2e25ea787ee2712f6bc84a409246a4780942de1a6eb17da13d1f4ea0f327ac" \
  "86a8d3b40feaf44342a208ffbcaab0ade8e8dc586c475c877fff9c6e4f07600b" \
  "a5c0e385cc604db51020dcedb207a5ec8e6befc8f996660724eeb1440edf834c" \
  "104e5ba4a25357a9195f8b6d06fd164c3a15ef2ccc27e3ac16e8e50e93c78bf7"
#define V1_B                                                         \
  "91569b556d50c0da0cf3830db3c701da697a771dd399bf9fbe5cece76722ff7d" \
  "249ac4d89e9e7f26a0df01d923218d4b63b90b236c6183910359164ec45b1c64" \
  "9617af85dd5fbb2664396fab1b358928b2e3a29efbb7bb80bfe9ac4771be8972" \
  "ce4a4cf01e5ee3563ff93297c8a03181f1ebf3df5b9821131ad3b3b7beeedbae" \
  "4d42e8ef31c6d951fcaad05dc58117e2626604843e78a3ccc65fc625c4fa46fa" \
  "b15af73edf2bf72bf0d70d1cde8461140a2b9ec3c9b133cbdf69468564f25180" \
  "4969a7fac22669ae8efa747aa4b9176be0ce2407603f37be8db74fc65bce7154" \
  "58f82264ce53f594edc72493775e92105b296b489a038010d32a8451e9b07717" \
  "39b4d2561412031bd99c0e3d4075b6a3753eca44759236646181268e9a45039c" \
  "9e5dd135259e0eb813a1a4b09b7b63599ecfa26f2593d3eae587eeecb9cd6418" \
  "0e7f5ce58b2489abe445164cf02d94bf727b0d8f186ff8177bef18b9f70fa5da" \
  "4907e5abe3aa9cfe855182ac67900d427bfc1776ce80a057eaa1302f6148639c"
#define V1_U \
  "518abab485458c4c3290cc23df6ae805115d7be7db473a1312169e122ff583ba"
#define V1_S                                                         \
  "b5fe5103de94f3e59707ab4598b6c1fe7cfaee3984e88463fe296a9cb308d068" \
  "fb85a7f1ae130cbe3f2170e38109819da6e6df0c769a1664ce86c2239d74acd5" \
  "3ca869826c0d1cd3b5459eea99cbb64bb0fec4bd9c9e500028c650b77444e8db" \
  "869236023e552a1b139794fd48a9c29751c64fc5c8cd5bb206a0449881bcf490" \
  "573f2f971aeba8c558067343867225cb14a9a206283731108cf51ec6209fabe7" \
  "315b0c5bc492132b7e2298d44e440418b2425c67cd4821224caee5bd676a8ba7" \
  "6341f23d477acdabe1f400b050915219e4d0387acec704327d93a9a42702da78" \
  "a1f766a03c7324589ec1cafe07edd75c06535fc047744baeb0e895768c3b3e2a" \
  "cd47885cac20bf7d9ad238a1112634e3b33dbd0515fc47817bfd97f2fff05fec" \
  "f1afdc76b1154d4a1ef52938a6cc32513a4eb7e8a7e8fbd314394550312e1f06" \
  "1633a8a0944a2cf5b1ece6a2287071365308b7a8cd881ab7e07df6e4e3c37d6f" \
  "13af9c6edca3d193a8939c3a171a8e416503ef40040039f2cd8ebc3e940881d0"
#define V1_KEY \
  "08ccbd99acdf29d2b02c91c2d98237b0"
#define V1_SIGNATURE \
  "tgj6ynm6y9vZSBdy20CUg6BdtUYj9Df1/mk53SzOd9g="

/* V2: {"poolId":"eu-west-1_Zz9","userIdForSrp":"bob@example.com","password":"pässwörd ✓ 2"} */
#define V2_POOL \
  "Zz9"
#define V2_USER \
  "bob@example.com"
#define V2_PASSWORD \
  "p\xc3\xa4"       \
  "ssw\xc3\xb6"     \
  "rd \xe2\x9c\x93" \
  " 2"
#define V2_SALT \
  "00003abc9ec0ee58f3ca92703d203dfd"
#define V2_PRIVATE_A                                                 \
  "89abc4b0fc3c6650449e806b415930fe79a22d24726a89321964c3ba22eeb7b0" \
  "18ce12ca44ca560169df898fb2ddcddaedfc2094db5c6ca7ebca3c7f678a690c" \
  "be6204337f44a7da500f3df8ab6559f86a4239c93b73622c56f09249c148162b" \
  "8d4f10cc38f867e6df0bef9ea280c0cacf21649025bb34838ab7bebdcbecbfd1"
#define V2_PRIVATE_B \
  "fe2d2f5dd26be405dac652b8a81bd2f72b1c5c17187781d8f4d710506387fc98"
#define V2_SECRET_BLOCK                                              \
  "v92mGnz/c8Gbk5srbBQrSTz5QHPxyYE9/OLpe9xVa07ZshV2A4rdwCyDrbB8d70Y" \
  "ccPTbkRdshSwf+VzOMcWqKGx9CJHJpURAxdZhgcWJCpmXCjxWl1XKJfX08Gpy1H6" \
  "tw=="
#define V2_TIMESTAMP \
  "Thu Feb 29 23:59:59 UTC 2024"
#define V2_X \
  "3594637d65bc09151540834b65b608c40cf17e05a2afaeeb80409566e0f6ec75"
#define V2_VERIFIER                                                  \
  "beca8269b41913d281da2b2e1cde327f06148c08043fec011ba47ecf807e577d" \
  "9c651db19a32f63a8e858445573f09152be45e8e41e8bf13c2b46392aacca510" \
  "1ce51cf7dabead715795ca17d974b1f1616007409f2989925fa87e8e8ce71790" \
  "3d2a5385ae18a6ee95e2825fdca9676318a6252bc4d3cef866aba443a2a41810" \
  "1a0e2da673052abca28e7552dc787b4f74e9a77e6da94722f63ca7fc596ce00f" \
  "ce37e2acc29a16e6c003efc26f487aafc9e67c36ba5e2fe0c6dae840b6e29a80" \
  "e65e315f850bd71aaaff5baa399bafa7f15a0a30095be31da6ad794a8e296993" \
  "460d1a558345d308ae13cde39053f6e8fb09310e41b6a785427f8134014fe256" \
  "26ee65a427f57c1fe66ad5d046beece46edda3eaaa31c0783c6a79796c530fb1" \
  "6181fef284d63d4bf433a421bcc83296df76481e26e68adb092d247a3d60e388" \
  "50a6d2921cb57d07bff3fc0c7426f7df2505abad943bfa9784339e6bd4a84ec3" \
  "72104b2ad2918a4cb07c86b0361e5a6c2eff07f582c6ae79f7ed9995ed7f8d0e"
#define V2_A                                                         \
  "51b437d0ce5d4615758d82b0eb077be8d81d2fb5ac5417c4fd8f6f9ca95fa843" \
  "a0e9a649a5c65c3a9e305e3a8ec4d5e8178e13a247b3e87d0ed3eadaa2c00496" \
  "3d72233bacd4be5f8d087f527fca30fef21ea1a0eaca35cd3c634e1abf7d8435" \
  "59102b669431c18df76776601289e8a2eb4b6003d4d64853bb29f030ffe3b58c" \
  "e4e1b2ac1630dff20e11c40a2f280e1ece961ef5d7b1473604a79c4fed7844cf" \
  "25ea278c17e92a726bc9ff2823706789f8b0a1ebf59f9858782cf1ff21e0821d" \
  "8fe97ee40444886d3194f9849fcda697cccb3ea73b8d3d07fe0a001af43957b6" \
  "bad4138c7c8df953991f03f71ad2cc49a6dc3bac96205d8430de780df0bfd93f" \
  "2a339b45ca981612cd68dca2f2a1242d40a017e9dd1bbe3762c9cc0e39057a93" \
  "ff08c4c975372cb1b997e10afeb9f896816603962f492f4a7ac964a2a4dea8e5" \
  "e37b496e8046505917a5b2c9f421415ddaad1b525d721acbcae0a3d920359dc7" \
  "3efc8834fd7f9679751bfdbe28bf8be503b888328592d284d2992d824d96e24f"
#define V2_B                                                         \
  "2cc82de60180c86ba913ca695fbf73cee7f5abf35a3254ddf82aa81dcd01bf6c" \
  "9938afe9353aa0c29ab0e2c96a7868a4801910bd532e109ed96eb9d7fc76ddab" \
  "3c97d97b2efbc9313173788381ef1864602c55a4d0d408afabeb9618d4027a7e" \
  "f5c151f098f57dd3cab1b5478da8ecc80817f95b353b709a7a81650e9b98b567" \
  "ea6f4741cad1ff65aebce39f4b166935bf8e4c0220628faed7c74dfa057768e2" \
  "1733f6f7d5fbef1efa2a9fd84a098af76b3c087d850d9ae951b6dc5a57961471" \
  "7331f621a48fea28efecf76822242d354a97cbb6955f76cca713bd112118ccb9" \
  "a4e87d9746ca1943298ac46a41829d3416c5b7dde31738d2393734c965b50669" \
  "e7b7da5a54d4557e7a483d624e7808b8c286158975791f91ab3f80336965273f" \
  "a64ffe265edfa0199236ef1b2e88f8db143354e7443f87bbb52d09126f95fafe" \
  "592b928dfe587dece4858f8a13955d1fd7535c26acbd50a3f7733f633acd9b7c" \
  "7c35d85057383d06fd00dc3e9b786e0e5011705304bbe21502a54fe99459ea5f"
#define V2_U \
  "9d8398047f2c42d2c756f731606bd23fad3b835bf4d71cf5e806d5327de2a8ae"
#define V2_S                                                         \
  "7c8035d02d674916fec39af7aade5ddbbf89c93d1cd239f0eeba124104b9c812" \
  "2a8960049227bc791654013412c5739bee0f3f37e5186d42243f8eb809cdf1be" \
  "6aad74cc53605113cb16376cf6ee7888251588b1959cbda2d58f17b4ce6a91ae" \
  "b9d4bdb7d47ed0c638588185939c0c0289af39ec0bdefe9990fa106a78c98774" \
  "87e42d8dabce9b12e6dda7bd753a8a3027a1adf91a08871fdbf511929339b9f5" \
  "8f61b1658fc59c624093efd7c818005e6f92637555cb325096c8b2dda581b8aa" \
  "4d5a8c8abe7cd99a06e61cf79b9c3806b7330a9e08fb9a7837ca454cfa8ab08c" \
  "7ae2fc83d84a43c4b819aa7bbb85278a40355d0a6110ed82cb1158394cb15677" \
  "cc51c5b6eb1f35c320104e8683dcd78b72de4372ba47523cef3e69b705d8cb1d" \
  "71a7ba7da55a98495609d02cad8ab7fae6f4d7c492dd3a60b6c0fbaa24168947" \
  "3bc2cfc0fc4b24f35dfba56b5bf40cdebcef41cb0b495bcf2b3e51979608e72d" \
  "b2c80a5b0bb981eb671c9d99ac3ccbbc94ffd842f3aad98e00fc86e2f879f0f"
#define V2_KEY \
  "7f608db93147ad4a30532ad727765e9c"
#define V2_SIGNATURE \
  "5SRmoI0ps6FdsGHRQyzbxn8t6AVsO6dgpPfkHF6bl2Q="

/* RFC 5054, appendix A, 3072-bit group */
#define GROUP_N                                                      \
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74" \
  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437" \
  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" \
  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05" \
  "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB" \
  "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" \
  "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718" \
  "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33" \
  "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" \
  "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864" \
  "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2" \
  "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"

typedef struct
{
  const char *pool;
  const char *user;
  const char *password;
  const char *salt;
  const char *private_a;
  const char *private_b;
  const char *secret_block;
  const char *timestamp;
  const char *x;
  const char *verifier;
  const char *A;
  const char *B;
  const char *u;
  const char *S;
  const char *key;
  const char *signature;
} Vector;

#define VECTOR(V)                                                             \
  {                                                                           \
    V##_POOL, V##_USER, V##_PASSWORD, V##_SALT, V##_PRIVATE_A, V##_PRIVATE_B, \
        V##_SECRET_BLOCK, V##_TIMESTAMP, V##_X, V##_VERIFIER, V##_A, V##_B,   \
        V##_U, V##_S, V##_KEY, V##_SIGNATURE                                  \
  }

static const Vector vectors[] = { VECTOR (V1), VECTOR (V2) };

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static GBytes *
bytes_from_hex (const char *hex)
{
  gsize   len = strlen (hex) / 2;
  guint8 *out = g_malloc (len);

  g_assert_cmpuint (strlen (hex) % 2, ==, 0);
  for (gsize i = 0; i < len; i++)
    out[i] = (guint8) (g_ascii_xdigit_value (hex[2 * i]) << 4 | g_ascii_xdigit_value (hex[2 * i + 1]));

  return g_bytes_new_take (out, len);
}

static char *
hex_from_bytes (GBytes *bytes)
{
  gsize         len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  GString      *s = g_string_new (NULL);

  for (gsize i = 0; i < len; i++)
    g_string_append_printf (s, "%02x", data[i]);

  return g_string_free (s, FALSE);
}

static GBytes *
secret_block_of (const Vector *v)
{
  gsize   len;
  guint8 *data = g_base64_decode (v->secret_block, &len);

  return g_bytes_new_take (data, len);
}

static gint64
unix_of (const char *timestamp)
{
  gint64 t = 0;

  g_assert_true (fl_srp_parse_timestamp (timestamp, &t));
  return t;
}

/* a server for a vector, with its b */
static FlSrpServer *
vector_server (const Vector *v)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) verifier = bytes_from_hex (v->verifier);
  FlSrpServer       *server = _fl_srp_server_new_with_private (verifier, v->private_b, &error);

  g_assert_no_error (error);
  g_assert_nonnull (server);
  return server;
}

/* a vector's answer, with some of it changed; now is the timestamp's */
static gboolean
vector_verify (const Vector *v,
               const char   *a_hex,
               GBytes       *secret_block,
               const char   *timestamp,
               const char   *signature,
               GError      **error)
{
  g_autoptr (FlSrpServer) server = vector_server (v);
  g_autoptr (GBytes)      block = secret_block_of (v);

  return _fl_srp_server_verify_at (server, a_hex ? a_hex : v->A, v->pool, v->user,
                                   secret_block ? secret_block : block,
                                   timestamp ? timestamp : v->timestamp,
                                   signature ? signature : v->signature,
                                   unix_of (v->timestamp), NULL, error);
}

static char *
now_timestamp (void)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();

  return fl_srp_format_timestamp (now);
}

/* ------------------------------------------------------------------ */
/* known vectors                                                       */

static void
test_vector_client (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (vectors); i++)
    {
      const Vector           *v = &vectors[i];
      g_autoptr (FlSrpClient) client = _fl_srp_client_new_with_private (v->private_a);
      g_autoptr (GError)      error = NULL;
      g_autofree char        *a_hex = NULL;
      g_autofree char        *signature = NULL;
      FlSrpTrace              trace = { 0 };

      g_assert_nonnull (client);
      a_hex = fl_srp_client_get_public_hex (client);
      g_assert_cmpstr (a_hex, ==, v->A);

      signature = _fl_srp_client_sign_traced (client, v->pool, v->user, v->password, v->salt, v->B,
                                              v->secret_block, v->timestamp, &trace, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (trace.k_hex, ==, VECTOR_K);
      g_assert_cmpstr (trace.x_hex, ==, v->x);
      g_assert_cmpstr (trace.u_hex, ==, v->u);
      g_assert_cmpstr (trace.s_hex, ==, v->S);
      g_assert_cmpstr (trace.key_hex, ==, v->key);
      g_assert_cmpstr (signature, ==, v->signature);
      _fl_srp_trace_clear (&trace);
      g_assert_null (trace.s_hex);
    }
}

/* SRP_B and SALT are numbers: upper case and leading zeros change nothing */
static void
test_vector_client_hex_forms (void)
{
  const Vector           *v = &vectors[0];
  g_autoptr (FlSrpClient) client = _fl_srp_client_new_with_private (v->private_a);
  g_autoptr (GError)      error = NULL;
  g_autofree char        *b_upper = g_ascii_strup (v->B, -1);
  g_autofree char        *salt_zeros = g_strconcat ("000", v->salt, NULL);
  g_autofree char        *signature = NULL;

  signature = fl_srp_client_sign (client, v->pool, v->user, v->password, salt_zeros, b_upper,
                                  v->secret_block, v->timestamp, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (signature, ==, v->signature);
}

static void
test_vector_verifier (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (vectors); i++)
    {
      const Vector      *v = &vectors[i];
      g_autoptr (GBytes) salt = bytes_from_hex (v->salt);
      g_autoptr (GBytes) verifier = fl_srp_compute_verifier (v->pool, v->user, v->password, salt);
      g_autofree char   *hex = hex_from_bytes (verifier);

      g_assert_cmpuint (g_bytes_get_size (verifier), ==, 384);
      g_assert_cmpstr (hex, ==, v->verifier);
    }
}

static void
test_vector_server (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (vectors); i++)
    {
      const Vector           *v = &vectors[i];
      g_autoptr (FlSrpServer) server = vector_server (v);
      g_autoptr (GBytes)      block = secret_block_of (v);
      g_autoptr (GError)      error = NULL;
      g_autofree char        *b_hex = fl_srp_server_get_public_hex (server);
      FlSrpTrace              trace = { 0 };
      gboolean                ok;

      g_assert_cmpstr (b_hex, ==, v->B);
      ok = _fl_srp_server_verify_at (server, v->A, v->pool, v->user, block, v->timestamp,
                                     v->signature, unix_of (v->timestamp), &trace, &error);
      g_assert_no_error (error);
      g_assert_true (ok);
      g_assert_cmpstr (trace.k_hex, ==, VECTOR_K);
      g_assert_null (trace.x_hex);
      g_assert_cmpstr (trace.u_hex, ==, v->u);
      g_assert_cmpstr (trace.s_hex, ==, v->S);
      g_assert_cmpstr (trace.key_hex, ==, v->key);
      _fl_srp_trace_clear (&trace);
    }
}

/* ------------------------------------------------------------------ */
/* round trips                                                         */

static void
test_round_trip (void)
{
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr (GError)      error = NULL;
      g_autoptr (GBytes)      salt = NULL;
      g_autoptr (GBytes)      verifier = NULL;
      g_autoptr (GBytes)      block = NULL;
      g_autoptr (FlSrpServer) server = NULL;
      g_autoptr (FlSrpClient) client = fl_srp_client_new ();
      g_autofree char        *salt_hex = NULL;
      g_autofree char        *b_hex = NULL;
      g_autofree char        *a_hex = fl_srp_client_get_public_hex (client);
      g_autofree char        *block_b64 = NULL;
      g_autofree char        *timestamp = now_timestamp ();
      g_autofree char        *signature = NULL;
      guint8                  raw[64];

      g_assert_true (fl_srp_make_verifier ("AbC123", "carol", "s3cret \xc3\xa9t\xc3\xa9", &salt, &verifier, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (g_bytes_get_size (salt), ==, 16);
      g_assert_cmpuint (g_bytes_get_size (verifier), ==, 384);

      server = fl_srp_server_new (verifier, &error);
      g_assert_no_error (error);
      b_hex = fl_srp_server_get_public_hex (server);
      salt_hex = hex_from_bytes (salt);
      for (guint j = 0; j < sizeof raw; j++)
        raw[j] = (guint8) g_random_int ();
      block = g_bytes_new (raw, sizeof raw);
      block_b64 = g_base64_encode (raw, sizeof raw);

      signature = fl_srp_client_sign (client, "AbC123", "carol", "s3cret \xc3\xa9t\xc3\xa9", salt_hex, b_hex,
                                      block_b64, timestamp, &error);
      g_assert_no_error (error);
      g_assert_nonnull (signature);
      g_assert_true (fl_srp_server_verify (server, a_hex, "AbC123", "carol", block, timestamp, signature, &error));
      g_assert_no_error (error);

      /* a challenge is answered once, before anything else is looked at */
      g_assert_false (fl_srp_server_verify (server, a_hex, "AbC123", "carol", block, timestamp, signature, &error));
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
      g_clear_error (&error);
      g_assert_false (fl_srp_server_verify (server, "zz", "AbC123", "carol", block, timestamp, signature, &error));
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
    }
}

static void
test_random_values (void)
{
  g_autoptr (FlSrpClient) c1 = fl_srp_client_new ();
  g_autoptr (FlSrpClient) c2 = fl_srp_client_new ();
  g_autofree char        *a1 = fl_srp_client_get_public_hex (c1);
  g_autofree char        *a2 = fl_srp_client_get_public_hex (c2);
  g_autoptr (GBytes)      verifier = bytes_from_hex (vectors[0].verifier);
  g_autoptr (FlSrpServer) s1 = fl_srp_server_new (verifier, NULL);
  g_autoptr (FlSrpServer) s2 = fl_srp_server_new (verifier, NULL);
  g_autofree char        *b1 = fl_srp_server_get_public_hex (s1);
  g_autofree char        *b2 = fl_srp_server_get_public_hex (s2);
  g_autoptr (GBytes)      salt1 = NULL;
  g_autoptr (GBytes)      salt2 = NULL;
  g_autoptr (GBytes)      v1 = NULL;
  g_autoptr (GBytes)      v2 = NULL;

  g_assert_cmpstr (a1, !=, a2);
  g_assert_cmpstr (b1, !=, b2);
  g_assert_cmpstr (b1, !=, vectors[0].B);
  g_assert_true (fl_srp_make_verifier ("p", "u", "pw", &salt1, &v1, NULL));
  g_assert_true (fl_srp_make_verifier ("p", "u", "pw", &salt2, &v2, NULL));
  g_assert_false (g_bytes_equal (salt1, salt2));
  g_assert_false (g_bytes_equal (v1, v2));
}

/* ------------------------------------------------------------------ */
/* the server's refusals                                               */

static void
test_refuse_a_zero (void)
{
  const Vector *v = &vectors[0];
  mpz_t         n;

  /* 0, N, 2N, 3N: A mod N == 0 */
  mpz_init (n);
  for (guint i = 0; i < 4; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char   *a_hex = NULL;

      mpz_set_str (n, GROUP_N, 16);
      mpz_mul_ui (n, n, i);
      a_hex = mpz_get_str (NULL, 16, n);
      g_assert_false (vector_verify (v, a_hex, NULL, NULL, NULL, &error));
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER);
    }
  mpz_clear (n);

  /* and zeros, however many */
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (vector_verify (v, i ? "0000" : "0", NULL, NULL, NULL, &error));
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER);
    }
}

static void
test_refuse_bad_hex (void)
{
  const Vector    *v = &vectors[0];
  g_autofree char *too_long = g_strnfill (1025, '1');
  g_autofree char *spaced = g_strconcat (" ", v->A, NULL);
  g_autofree char *prefixed = g_strconcat ("0x", v->A, NULL);
  g_autofree char *trailing = g_strconcat (v->A, "\n", NULL);
  const char      *bad[] = { "", "xyz", "12 34", "-1234", "+1234", "g", spaced, prefixed, trailing, too_long };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (vector_verify (v, bad[i], NULL, NULL, NULL, &error));
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER);
    }
}

static void
test_refuse_wrong_password (void)
{
  const Vector           *v = &vectors[0];
  g_autoptr (FlSrpClient) client = _fl_srp_client_new_with_private (v->private_a);
  g_autoptr (GError)      error = NULL;
  g_autofree char        *signature = NULL;

  signature = fl_srp_client_sign (client, v->pool, v->user, "Corr3ct-h0rse?", v->salt, v->B,
                                  v->secret_block, v->timestamp, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (signature, !=, v->signature);
  g_assert_false (vector_verify (v, NULL, NULL, NULL, signature, &error));
  g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
}

static void
test_refuse_wrong_signature (void)
{
  const Vector    *v = &vectors[0];
  g_autofree char *flipped = g_strdup (v->signature);
  g_autofree char *shorter = g_strndup (v->signature, strlen (v->signature) - 1);
  g_autofree char *longer = g_strconcat (v->signature, "A", NULL);
  const char      *bad[] = { flipped, shorter, longer, "" };

  flipped[3] = flipped[3] == 'A' ? 'B' : 'A';
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (vector_verify (v, NULL, NULL, NULL, bad[i], &error));
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
    }
}

static void
test_refuse_tampered_secret_block (void)
{
  const Vector      *v = &vectors[0];
  g_autoptr (GBytes) block = secret_block_of (v);
  gsize              len;
  guint8            *data = g_bytes_unref_to_data (g_steal_pointer (&block), &len);
  g_autoptr (GBytes) tampered = NULL;
  g_autoptr (GBytes) cut = NULL;
  g_autoptr (GError) error = NULL;

  data[len / 2] ^= 0x01;
  tampered = g_bytes_new_take (data, len);
  g_assert_false (vector_verify (v, NULL, tampered, NULL, NULL, &error));
  g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
  g_clear_error (&error);

  block = secret_block_of (v);
  cut = g_bytes_new_from_bytes (block, 0, g_bytes_get_size (block) - 1);
  g_assert_false (vector_verify (v, NULL, cut, NULL, NULL, &error));
  g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
}

static void
test_refuse_timestamp (void)
{
  const Vector *v = &vectors[0];
  gint64        signed_at = unix_of (v->timestamp);
  /* a second later: well-formed and fresh, but not what was signed */
  g_autoptr (GDateTime) later = g_date_time_new_from_unix_utc (signed_at + 1);
  g_autofree char      *later_text = fl_srp_format_timestamp (later);
  const char           *malformed[] = { "Fri Nov 06 08:03:09 UTC 2026", "Fri Nov 6 08:03:09 GMT 2026", "", "now" };
  const gint64          leeway = FL_SRP_TIMESTAMP_LEEWAY;
  const gint64          offsets[] = { -leeway - 1, leeway + 1, -86400 };

  {
    g_autoptr (GError) error = NULL;

    g_assert_false (vector_verify (v, NULL, NULL, later_text, NULL, &error));
    g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
  }

  for (guint i = 0; i < G_N_ELEMENTS (malformed); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (vector_verify (v, NULL, NULL, malformed[i], NULL, &error));
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER);
    }

  /* stale or from the future: the server's clock is the timestamp's + offset */
  for (guint i = 0; i < G_N_ELEMENTS (offsets) + 2; i++)
    {
      g_autoptr (FlSrpServer) server = vector_server (v);
      g_autoptr (GBytes)      block = secret_block_of (v);
      g_autoptr (GError)      error = NULL;
      gboolean                within = i >= G_N_ELEMENTS (offsets);
      gint64                  now = signed_at + (within ? (i % 2 ? leeway : -leeway) : -offsets[i]);
      gboolean                ok;

      ok = _fl_srp_server_verify_at (server, v->A, v->pool, v->user, block, v->timestamp, v->signature,
                                     now, NULL, &error);
      if (within)
        {
          g_assert_no_error (error);
          g_assert_true (ok);
        }
      else
        {
          g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
          g_assert_false (ok);
        }
    }
}

static void
test_refuse_other_user (void)
{
  const Vector           *v = &vectors[0];
  g_autoptr (FlSrpServer) server = vector_server (v);
  g_autoptr (GBytes)      block = secret_block_of (v);
  g_autoptr (GError)      error = NULL;

  g_assert_false (_fl_srp_server_verify_at (server, v->A, v->pool, "mallory", block, v->timestamp,
                                            v->signature, unix_of (v->timestamp), NULL, &error));
  g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED);
}

static void
test_refuse_bad_verifier (void)
{
  g_autoptr (GBytes) empty = g_bytes_new (NULL, 0);
  g_autoptr (GBytes) zeros = g_bytes_new_take (g_malloc0 (384), 384);
  guint8            *one_385 = g_malloc0 (385); /* 1, in too many bytes */
  g_autoptr (GBytes) too_long = (one_385[384] = 1, g_bytes_new_take (one_385, 385));
  g_autoptr (GBytes) ones = g_bytes_new_take (memset (g_malloc (384), 0xff, 384), 384);
  GBytes            *bad[] = { empty, zeros, too_long, ones };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError)      error = NULL;
      g_autoptr (FlSrpServer) server = fl_srp_server_new (bad[i], &error);

      g_assert_null (server);
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER);
    }
}

/* ------------------------------------------------------------------ */
/* the client's refusals                                               */

static void
test_client_refuses (void)
{
  const Vector           *v = &vectors[0];
  g_autoptr (FlSrpClient) client = _fl_srp_client_new_with_private (v->private_a);
  const struct
  {
    const char *salt, *b, *block;
  } bad[] = {
    { v->salt, GROUP_N, v->secret_block },
    { v->salt, "000", v->secret_block },
    { v->salt, "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
               "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
               "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
               "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
               "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
               "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
               "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
               "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
               "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
               "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
               "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
               "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
      v->secret_block },
    { v->salt, "zz", v->secret_block },
    { v->salt, "", v->secret_block },
    { "salt", v->B, v->secret_block },
    { "", v->B, v->secret_block },
    { v->salt, v->B, "not base64!" },
    { v->salt, v->B, "QUJD=" },
    { v->salt, v->B, "QU=D" },
    { v->salt, v->B, "" },
  };

  g_assert_nonnull (client);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char   *signature = NULL;

      signature = fl_srp_client_sign (client, v->pool, v->user, v->password, bad[i].salt, bad[i].b,
                                      bad[i].block, v->timestamp, &error);
      g_assert_null (signature);
      g_assert_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER);
    }

  g_assert_null (_fl_srp_client_new_with_private ("0"));
  g_assert_null (_fl_srp_client_new_with_private ("nothex"));
}

/* ------------------------------------------------------------------ */
/* timestamps                                                          */

static void
test_timestamp_format (void)
{
  const struct
  {
    int         y, mo, d, h, mi, s;
    const char *text;
  } cases[] = {
    { 2026, 11, 6, 8, 3, 9, "Fri Nov 6 08:03:09 UTC 2026" },
    { 2024, 2, 29, 23, 59, 59, "Thu Feb 29 23:59:59 UTC 2024" },
    { 2025, 1, 1, 0, 0, 0, "Wed Jan 1 00:00:00 UTC 2025" },
    { 2023, 12, 31, 12, 30, 5, "Sun Dec 31 12:30:05 UTC 2023" },
    { 1970, 1, 1, 0, 0, 0, "Thu Jan 1 00:00:00 UTC 1970" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GDateTime) t = g_date_time_new_utc (cases[i].y, cases[i].mo, cases[i].d,
                                                     cases[i].h, cases[i].mi, cases[i].s);
      g_autofree char      *text = fl_srp_format_timestamp (t);
      gint64                parsed = -1;

      g_assert_cmpstr (text, ==, cases[i].text);
      g_assert_true (fl_srp_parse_timestamp (text, &parsed));
      g_assert_cmpint (parsed, ==, g_date_time_to_unix (t));
    }

  /* another time zone is written in UTC */
  {
    g_autoptr (GTimeZone) tz = g_time_zone_new_offset (-5 * 3600);
    g_autoptr (GDateTime) t = g_date_time_new (tz, 2026, 11, 5, 22, 3, 9);
    g_autofree char      *text = fl_srp_format_timestamp (t);

    g_assert_cmpstr (text, ==, "Fri Nov 6 03:03:09 UTC 2026");
  }

  /* now, both ways */
  {
    g_autofree char *text = now_timestamp ();
    gint64           parsed = 0;
    gint64           now = g_get_real_time () / G_USEC_PER_SEC;

    g_assert_true (fl_srp_parse_timestamp (text, &parsed));
    g_assert_cmpint (parsed, <=, now);
    g_assert_cmpint (parsed, >=, now - 5);
  }
}

static void
test_timestamp_malformed (void)
{
  const char *bad[] = {
    "Fri Nov 06 08:03:09 UTC 2026", /* zero-padded day */
    "Sat Nov 6 08:03:09 UTC 2026",  /* wrong weekday */
    "fri Nov 6 08:03:09 UTC 2026",
    "Fri nov 6 08:03:09 UTC 2026",
    "Friday Nov 6 08:03:09 UTC 2026",
    "Fri Nov  6 08:03:09 UTC 2026",
    " Fri Nov 6 08:03:09 UTC 2026",
    "Fri Nov 6 08:03:09 UTC 2026 ",
    "Fri Nov 6 08:03:09 UTC 2026\n",
    "Fri Nov 6 8:03:09 UTC 2026",
    "Fri Nov 6 08:3:09 UTC 2026",
    "Fri Nov 6 08:03:9 UTC 2026",
    "Fri Nov 6 08:03 UTC 2026",
    "Fri Nov 6 24:00:00 UTC 2026",
    "Fri Nov 6 08:60:09 UTC 2026",
    "Fri Nov 6 08:03:60 UTC 2026",
    "Fri Nov 6 08-03-09 UTC 2026",
    "Fri Nov 6 08:03:09 GMT 2026",
    "Fri Nov 6 08:03:09 utc 2026",
    "Fri Nov 6 08:03:09 UTC 26",
    "Fri Nov 6 08:03:09 UTC 02026",
    "Fri Nov 6 08:03:09 UTC 20x6",
    "Fri Nov 6 08:03:09 +0000 2026",
    "Fri Nov 106 08:03:09 UTC 2026",
    "Fri Nov 6_08:03:09 UTC 2026",
    "Fri Nov 16_08:03:09 UTC 2026",
    "Fri_Nov 6 08:03:09 UTC 2026",
    "Fri Nov 0 08:03:09 UTC 2026",
    "Sat Nov 31 08:03:09 UTC 2026",
    "Thu Feb 29 08:03:09 UTC 2025",
    "Wed Dec 31 23:59:59 UTC 1969",
    "Fri Nov 6",
    "Fri Nov ",
    "Fri",
    "",
    "2026-11-06T08:03:09Z",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      gint64 t = 42;

      if (fl_srp_parse_timestamp (bad[i], &t))
        g_error ("parsed %s", bad[i]);
      g_assert_cmpint (t, ==, 42);
    }

  /* the good one, to show the list above fails for its own reasons */
  g_assert_true (fl_srp_parse_timestamp ("Fri Nov 6 08:03:09 UTC 2026", NULL));
  g_assert_true (fl_srp_parse_timestamp ("Mon Nov 30 08:03:09 UTC 2026", NULL));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fieldline/srp/vectors/client", test_vector_client);
  g_test_add_func ("/fieldline/srp/vectors/client-hex-forms", test_vector_client_hex_forms);
  g_test_add_func ("/fieldline/srp/vectors/verifier", test_vector_verifier);
  g_test_add_func ("/fieldline/srp/vectors/server", test_vector_server);
  g_test_add_func ("/fieldline/srp/round-trip", test_round_trip);
  g_test_add_func ("/fieldline/srp/random-values", test_random_values);
  g_test_add_func ("/fieldline/srp/refuse/a-zero-mod-n", test_refuse_a_zero);
  g_test_add_func ("/fieldline/srp/refuse/bad-hex", test_refuse_bad_hex);
  g_test_add_func ("/fieldline/srp/refuse/wrong-password", test_refuse_wrong_password);
  g_test_add_func ("/fieldline/srp/refuse/wrong-signature", test_refuse_wrong_signature);
  g_test_add_func ("/fieldline/srp/refuse/tampered-secret-block", test_refuse_tampered_secret_block);
  g_test_add_func ("/fieldline/srp/refuse/timestamp", test_refuse_timestamp);
  g_test_add_func ("/fieldline/srp/refuse/other-user", test_refuse_other_user);
  g_test_add_func ("/fieldline/srp/refuse/bad-verifier", test_refuse_bad_verifier);
  g_test_add_func ("/fieldline/srp/client-refuses", test_client_refuses);
  g_test_add_func ("/fieldline/srp/timestamp/format", test_timestamp_format);
  g_test_add_func ("/fieldline/srp/timestamp/malformed", test_timestamp_malformed);

  return g_test_run ();
}
