//! Small first- and last-name lists by culture, so that a customer in Osaka is not called
//! Kevin Schmidt. Names are plain ASCII because they also form e-mail addresses.

/// The name list a city's customers draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Culture {
    /// UK, US, Canada, Australia, …
    English,
    /// Germany, Austria, Switzerland, Netherlands.
    German,
    /// France, Quebec, Geneva.
    French,
    /// Spain, Latin America.
    Spanish,
    /// Brazil.
    Portuguese,
    /// Italy.
    Italian,
    /// Sweden.
    Nordic,
    /// Poland.
    Polish,
    /// Japan.
    Japanese,
    /// Korea.
    Korean,
    /// Singapore (and Chinese diaspora).
    Chinese,
    /// India.
    Indian,
    /// Gulf states, Egypt.
    Arabic,
}

/// Female first names, male first names and last names of one culture.
pub(crate) struct NameList {
    /// Female first names.
    pub female: &'static [&'static str],
    /// Male first names.
    pub male: &'static [&'static str],
    /// Family names.
    pub last: &'static [&'static str],
}

/// The name lists for a culture.
pub(crate) fn names(culture: Culture) -> &'static NameList {
    match culture {
        Culture::English => &ENGLISH,
        Culture::German => &GERMAN,
        Culture::French => &FRENCH,
        Culture::Spanish => &SPANISH,
        Culture::Portuguese => &PORTUGUESE,
        Culture::Italian => &ITALIAN,
        Culture::Nordic => &NORDIC,
        Culture::Polish => &POLISH,
        Culture::Japanese => &JAPANESE,
        Culture::Korean => &KOREAN,
        Culture::Chinese => &CHINESE,
        Culture::Indian => &INDIAN,
        Culture::Arabic => &ARABIC,
    }
}

static ENGLISH: NameList = NameList {
    female: &[
        "Emma",
        "Olivia",
        "Sophia",
        "Charlotte",
        "Amelia",
        "Grace",
        "Emily",
        "Hannah",
        "Chloe",
        "Lucy",
        "Jessica",
        "Sarah",
        "Megan",
        "Laura",
        "Rachel",
        "Abigail",
    ],
    male: &[
        "James", "Oliver", "William", "Jack", "Henry", "Thomas", "George", "Daniel", "Michael",
        "David", "Matthew", "Samuel", "Joseph", "Ryan", "Ethan", "Noah",
    ],
    last: &[
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Taylor", "Wilson", "Davies", "Evans",
        "Walker", "Wright", "Thompson", "White", "Harris", "Clarke", "Robinson", "Lewis", "Martin",
        "Hall", "Young",
    ],
};

static GERMAN: NameList = NameList {
    female: &[
        "Anna",
        "Lena",
        "Laura",
        "Julia",
        "Sophie",
        "Marie",
        "Lea",
        "Katharina",
        "Sarah",
        "Lisa",
        "Johanna",
        "Clara",
    ],
    male: &[
        "Lukas",
        "Jonas",
        "Leon",
        "Felix",
        "Maximilian",
        "Paul",
        "Tobias",
        "Jan",
        "Niklas",
        "Florian",
        "Stefan",
        "Daan",
    ],
    last: &[
        "Mueller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Schulz",
        "Hoffmann",
        "Koch",
        "Richter",
        "de Jong",
        "Jansen",
        "Bakker",
        "Visser",
    ],
};

static FRENCH: NameList = NameList {
    female: &[
        "Camille", "Manon", "Chloe", "Ines", "Lea", "Louise", "Juliette", "Sarah", "Claire",
        "Elodie", "Margaux", "Amelie",
    ],
    male: &[
        "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Nathan", "Antoine", "Mathieu",
        "Nicolas", "Julien", "Pierre",
    ],
    last: &[
        "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
        "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Tremblay", "Gagnon",
    ],
};

static SPANISH: NameList = NameList {
    female: &[
        "Lucia",
        "Sofia",
        "Maria",
        "Martina",
        "Paula",
        "Valentina",
        "Camila",
        "Daniela",
        "Carmen",
        "Elena",
        "Isabella",
        "Gabriela",
    ],
    male: &[
        "Hugo",
        "Mateo",
        "Santiago",
        "Alejandro",
        "Diego",
        "Daniel",
        "Pablo",
        "Javier",
        "Carlos",
        "Sebastian",
        "Juan",
        "Miguel",
    ],
    last: &[
        "Garcia",
        "Rodriguez",
        "Gonzalez",
        "Fernandez",
        "Lopez",
        "Martinez",
        "Sanchez",
        "Perez",
        "Gomez",
        "Diaz",
        "Hernandez",
        "Torres",
        "Ramirez",
        "Flores",
        "Castro",
        "Morales",
    ],
};

static PORTUGUESE: NameList = NameList {
    female: &[
        "Ana", "Beatriz", "Mariana", "Julia", "Larissa", "Fernanda", "Camila", "Leticia",
        "Gabriela", "Luiza",
    ],
    male: &[
        "Joao", "Pedro", "Lucas", "Gabriel", "Rafael", "Gustavo", "Felipe", "Thiago", "Bruno",
        "Matheus",
    ],
    last: &[
        "Silva",
        "Santos",
        "Oliveira",
        "Souza",
        "Rodrigues",
        "Ferreira",
        "Alves",
        "Pereira",
        "Lima",
        "Gomes",
        "Costa",
        "Ribeiro",
    ],
};

static ITALIAN: NameList = NameList {
    female: &[
        "Giulia",
        "Chiara",
        "Francesca",
        "Sara",
        "Martina",
        "Alessia",
        "Federica",
        "Valentina",
        "Elisa",
        "Giorgia",
    ],
    male: &[
        "Marco",
        "Luca",
        "Alessandro",
        "Andrea",
        "Matteo",
        "Francesco",
        "Lorenzo",
        "Davide",
        "Simone",
        "Riccardo",
    ],
    last: &[
        "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
        "Greco", "Bruno", "Gallo",
    ],
};

static NORDIC: NameList = NameList {
    female: &[
        "Elsa", "Alice", "Maja", "Ebba", "Astrid", "Wilma", "Freja", "Ingrid", "Linnea", "Saga",
    ],
    male: &[
        "Erik", "Lars", "Oscar", "William", "Lucas", "Hugo", "Axel", "Nils", "Anders", "Johan",
    ],
    last: &[
        "Andersson",
        "Johansson",
        "Karlsson",
        "Nilsson",
        "Eriksson",
        "Larsson",
        "Olsson",
        "Persson",
        "Svensson",
        "Gustafsson",
    ],
};

static POLISH: NameList = NameList {
    female: &[
        "Zofia",
        "Maja",
        "Julia",
        "Anna",
        "Katarzyna",
        "Agnieszka",
        "Magdalena",
        "Natalia",
        "Aleksandra",
        "Ewa",
    ],
    male: &[
        "Jakub",
        "Piotr",
        "Krzysztof",
        "Tomasz",
        "Pawel",
        "Michal",
        "Marcin",
        "Kacper",
        "Bartosz",
        "Wojciech",
    ],
    last: &[
        "Nowak",
        "Kowalski",
        "Wisniewski",
        "Wojcik",
        "Kowalczyk",
        "Kaminski",
        "Lewandowski",
        "Zielinski",
        "Szymanski",
        "Wozniak",
    ],
};

static JAPANESE: NameList = NameList {
    female: &[
        "Yui", "Hina", "Sakura", "Aoi", "Yuna", "Mei", "Haruka", "Rin", "Misaki", "Naomi",
    ],
    male: &[
        "Haruto", "Yuto", "Sota", "Ren", "Hiroshi", "Takumi", "Kenji", "Daiki", "Shota", "Kaito",
    ],
    last: &[
        "Sato",
        "Suzuki",
        "Takahashi",
        "Tanaka",
        "Watanabe",
        "Ito",
        "Yamamoto",
        "Nakamura",
        "Kobayashi",
        "Kato",
    ],
};

static KOREAN: NameList = NameList {
    female: &[
        "Seo-yeon", "Ji-woo", "Min-seo", "Ha-eun", "Soo-ah", "Ji-min", "Yuna", "Eun-ji",
    ],
    male: &[
        "Min-jun", "Seo-jun", "Do-yun", "Ji-ho", "Hyun-woo", "Jae-won", "Sung-min", "Tae-yang",
    ],
    last: &[
        "Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim",
    ],
};

static CHINESE: NameList = NameList {
    female: &[
        "Mei Ling", "Xin Yi", "Hui Min", "Li Na", "Jia Hui", "Siew Lan", "Wen Qi", "Pei Shan",
    ],
    male: &[
        "Wei Jie",
        "Jun Hao",
        "Zhi Wei",
        "Kai Wen",
        "Ming Hao",
        "Jia Le",
        "Yong Sheng",
        "Jian",
    ],
    last: &[
        "Tan", "Lim", "Lee", "Ng", "Ong", "Wong", "Goh", "Chua", "Chan", "Koh",
    ],
};

static INDIAN: NameList = NameList {
    female: &[
        "Priya", "Ananya", "Aditi", "Kavya", "Diya", "Isha", "Neha", "Pooja", "Sneha", "Riya",
    ],
    male: &[
        "Aarav",
        "Vivaan",
        "Arjun",
        "Rohan",
        "Rahul",
        "Vikram",
        "Amit",
        "Karan",
        "Siddharth",
        "Aditya",
    ],
    last: &[
        "Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta", "Rao",
        "Joshi", "Das",
    ],
};

static ARABIC: NameList = NameList {
    female: &[
        "Fatima", "Aisha", "Mariam", "Noor", "Layla", "Sara", "Huda", "Yasmin", "Rania", "Salma",
    ],
    male: &[
        "Mohammed", "Ahmed", "Omar", "Ali", "Youssef", "Khalid", "Hassan", "Ibrahim", "Tariq",
        "Karim",
    ],
    last: &[
        "Al Mansouri",
        "Al Hashimi",
        "Hassan",
        "Ibrahim",
        "Mahmoud",
        "Abdullah",
        "Farouk",
        "Nasser",
        "Saleh",
        "Haddad",
    ],
};

/// Domains used for e-mail addresses. All are reserved example domains so that no real
/// mailbox can ever be hit by accident.
pub(crate) const EMAIL_DOMAINS: [&str; 6] = [
    "example.com",
    "example.net",
    "example.org",
    "mail.example.com",
    "inbox.example.net",
    "post.example.org",
];
